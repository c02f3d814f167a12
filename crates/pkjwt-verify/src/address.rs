//! Which addresses a key-set or metadata fetch may connect to.
//!
//! A server that fetches client-registered `jwks_uri`s sends requests to URLs chosen by whoever
//! registers a client. Without a rule it can be pointed at the cloud metadata service
//! (169.254.169.254, fd00:ec2::254), an admin interface on the private network, or another
//! service on the loopback interface (server-side request forgery). So by default only public
//! (globally routable) addresses are fetched from; loopback follows
//! [`FetchPolicy::allow_loopback_http`](crate::FetchPolicy::allow_loopback_http), every other
//! non-public range needs
//! [`FetchPolicy::allow_private_addresses`](crate::FetchPolicy::allow_private_addresses).
//!
//! The rule is applied to the address actually connected to. An IP literal in a URL is checked
//! when the URL is vetted (the HTTP client connects to a literal without resolving it); a host
//! name is checked by [`GuardedResolver`], the resolver the HTTP client uses for every
//! connection, so a name that resolves to a public address once and to a private one when the
//! connection is made (DNS rebinding) is still refused, and a refusal happens before any
//! connection is attempted.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A non-public address: loopback (governed by its own switch) or another non-public range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// 127.0.0.0/8, ::1 (and their IPv4-mapped forms).
    Loopback,
    /// Any other address that is not globally routable; the text names the range.
    NonPublic(&'static str),
}

impl Class {
    /// The range, for messages ("a private (10.0.0.0/8, RFC 1918) address").
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Class::Loopback => "loopback",
            Class::NonPublic(what) => what,
        }
    }
}

/// What kind of non-public address `ip` is, or `None` for a public one.
pub(crate) fn classify(ip: IpAddr) -> Option<Class> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> Option<Class> {
    const RANGES: &[([u8; 4], u32, &str)] = &[
        (
            [0, 0, 0, 0],
            8,
            "\"this network\" (0.0.0.0/8, includes the unspecified address)",
        ),
        ([10, 0, 0, 0], 8, "private (10.0.0.0/8, RFC 1918)"),
        (
            [100, 64, 0, 0],
            10,
            "shared carrier-grade NAT (100.64.0.0/10)",
        ),
        (
            [169, 254, 0, 0],
            16,
            "link-local (169.254.0.0/16, includes the cloud metadata service 169.254.169.254)",
        ),
        ([172, 16, 0, 0], 12, "private (172.16.0.0/12, RFC 1918)"),
        (
            [192, 0, 0, 0],
            24,
            "IETF protocol assignment (192.0.0.0/24)",
        ),
        ([192, 0, 2, 0], 24, "documentation (192.0.2.0/24)"),
        (
            [192, 88, 99, 0],
            24,
            "deprecated 6to4 relay anycast (192.88.99.0/24)",
        ),
        ([192, 168, 0, 0], 16, "private (192.168.0.0/16, RFC 1918)"),
        ([198, 18, 0, 0], 15, "benchmarking (198.18.0.0/15)"),
        ([198, 51, 100, 0], 24, "documentation (198.51.100.0/24)"),
        ([203, 0, 113, 0], 24, "documentation (203.0.113.0/24)"),
        ([224, 0, 0, 0], 4, "multicast (224.0.0.0/4)"),
        ([255, 255, 255, 255], 32, "broadcast (255.255.255.255)"),
        ([240, 0, 0, 0], 4, "reserved (240.0.0.0/4)"),
    ];
    if ip.is_loopback() {
        return Some(Class::Loopback);
    }
    RANGES
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, what)| Class::NonPublic(what))
}

fn classify_v6(ip: Ipv6Addr) -> Option<Class> {
    let seg = ip.segments();
    if ip.is_unspecified() {
        return Some(Class::NonPublic("unspecified (::)"));
    }
    if ip.is_loopback() {
        return Some(Class::Loopback);
    }
    // Forms that carry an IPv4 address: judged by that address, since that is where the
    // packets end up (IPv4-mapped sockets, NAT64 and 6to4 gateways).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052).
        return classify_v4(embedded_v4(seg[6], seg[7]));
    }
    if seg[0] == 0x2002 {
        // 6to4 (2002::/16): the IPv4 address is in bits 16..48.
        return classify_v4(embedded_v4(seg[1], seg[2]))
            .or(Some(Class::NonPublic("6to4 (2002::/16, deprecated)")));
    }
    let ranges: &[(u16, u16, &'static str)] = &[
        (0xfc00, 0xfe00, "unique local (fc00::/7)"),
        (0xfe80, 0xffc0, "link-local (fe80::/10)"),
        (0xfec0, 0xffc0, "site-local (fec0::/10, deprecated)"),
        (0xff00, 0xff00, "multicast (ff00::/8)"),
    ];
    if let Some((_, _, what)) = ranges.iter().find(|(net, mask, _)| seg[0] & mask == *net) {
        return Some(Class::NonPublic(what));
    }
    if seg[0] == 0x3fff && seg[1] & 0xf000 == 0 {
        return Some(Class::NonPublic("documentation (3fff::/20)"));
    }
    if seg[0] == 0x2001 && seg[1] == 0x0db8 {
        return Some(Class::NonPublic("documentation (2001:db8::/32)"));
    }
    if seg[0] == 0x2001 && seg[1] < 0x0200 {
        // 2001::/23 holds Teredo, ORCHID and other special-purpose blocks; no JWKS host
        // lives there.
        return Some(Class::NonPublic(
            "IETF protocol assignment (2001::/23, includes Teredo)",
        ));
    }
    if seg[0] & 0xe000 != 0x2000 {
        // Everything else outside 2000::/3 (IPv4-compatible ::/96, discard-only 100::/64,
        // local-use NAT64 64:ff9b:1::/48, unassigned space) is not global unicast.
        return Some(Class::NonPublic(
            "outside the global unicast space 2000::/3",
        ));
    }
    None
}

fn embedded_v4(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))
}

/// Which non-public addresses may be connected to (from the
/// [`FetchPolicy`](crate::FetchPolicy)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AddressRule {
    /// Loopback addresses (`allow_loopback_http`).
    pub(crate) allow_loopback: bool,
    /// Every other non-public address (`allow_private_addresses`).
    pub(crate) allow_private: bool,
}

impl AddressRule {
    /// Why `ip` may not be connected to, or `None` when it may.
    pub(crate) fn refusal(self, ip: IpAddr) -> Option<Class> {
        match classify(ip)? {
            Class::Loopback if self.allow_loopback => None,
            Class::NonPublic(_) if self.allow_private => None,
            class => Some(class),
        }
    }

    /// Whether every non-public address is allowed, so names need no screening.
    pub(crate) fn allows_all(self) -> bool {
        self.allow_loopback && self.allow_private
    }
}

/// A refused address, as the resolver reports it (the fetch turns it into
/// [`JwksError::ForbiddenAddress`](crate::JwksError::ForbiddenAddress)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refused {
    /// The host name looked up.
    pub(crate) host: String,
    /// The first refused address among its answers.
    pub(crate) address: IpAddr,
    /// Its range.
    pub(crate) class: Class,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} resolves to {}, a {} address",
            self.host,
            self.address,
            self.class.describe()
        )
    }
}

impl std::error::Error for Refused {}

/// Checks every address a name resolved to. One refused address refuses the name: a name
/// that mixes public and private answers is either misconfigured or an attempt to reach the
/// private one, and refusing it whole keeps the outcome independent of which address the
/// client would have tried first.
pub(crate) fn screen(
    host: &str,
    addrs: Vec<SocketAddr>,
    rule: AddressRule,
) -> Result<Vec<SocketAddr>, Refused> {
    if let Some((address, class)) = addrs
        .iter()
        .find_map(|a| rule.refusal(a.ip()).map(|c| (a.ip(), c)))
    {
        return Err(Refused {
            host: host.into(),
            address,
            class,
        });
    }
    Ok(addrs)
}

/// The future a lookup returns.
pub(crate) type LookupFuture =
    Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>>;

/// A name lookup: the system resolver, or a fixed table in tests.
pub(crate) type Lookup = Arc<dyn Fn(String) -> LookupFuture + Send + Sync>;

/// The system resolver (getaddrinfo on tokio's blocking pool).
pub(crate) fn system_lookup() -> Lookup {
    Arc::new(|host: String| {
        Box::pin(async move {
            // Port 0: the HTTP client puts the URL's port on the addresses it gets back.
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.collect())
        })
    })
}

/// The HTTP client's resolver: looks a name up, then refuses it when any answer is an address
/// the rule does not allow. It runs for every new connection, so the check applies to the
/// addresses actually connected to.
pub(crate) struct GuardedResolver {
    rule: AddressRule,
    lookup: Lookup,
}

impl GuardedResolver {
    pub(crate) fn new(rule: AddressRule, lookup: Lookup) -> Self {
        GuardedResolver { rule, lookup }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let rule = self.rule;
        let lookup = (self.lookup)(host.clone());
        Box::pin(async move {
            let addrs = lookup.await?;
            if addrs.is_empty() {
                return Err(format!("{host} has no addresses").into());
            }
            let addrs = screen(&host, addrs, rule)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// A lookup answering from a fixed table (each name's answers in turn, the last one repeated)
/// and counting calls, so resolution can be tested without DNS and without sending anything.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn table_lookup(
    entries: &[(&str, &str)],
) -> (Lookup, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let mut map: std::collections::HashMap<String, Vec<IpAddr>> = Default::default();
    for (h, ip) in entries {
        map.entry(h.to_string())
            .or_default()
            .push(ip.parse().unwrap());
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let per_name = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        usize,
    >::new()));
    let c = calls.clone();
    let lookup: Lookup = Arc::new(move |host: String| {
        c.fetch_add(1, Ordering::SeqCst);
        let n = {
            let mut seen = per_name.lock().unwrap();
            let n = seen.entry(host.clone()).or_default();
            *n += 1;
            *n - 1
        };
        let found = map
            .get(&host)
            .map(|answers| answers[n.min(answers.len() - 1)]);
        Box::pin(async move {
            found
                .map(|ip| vec![SocketAddr::new(ip, 0)])
                .ok_or_else(|| std::io::Error::other(format!("{host}: unknown")))
        })
    });
    (lookup, calls)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn class(ip: &str) -> Option<Class> {
        classify(ip.parse().unwrap())
    }

    #[test]
    fn non_public_ranges_are_classified() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.169.254",
            "169.254.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "3fff::1",
            "2001::1",
            "100::1",
            "64:ff9b:1::1",
            // IPv4-mapped and IPv4-embedding forms of non-public IPv4 addresses.
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:192.168.0.1",
            "::ffff:0.0.0.0",
            "64:ff9b::a9fe:a9fe",
            "2002:a00:1::1",
            // 6to4 is deprecated (RFC 7526): refused even around a public IPv4 address.
            "2002:808:808::1",
            "::10.0.0.1",
        ] {
            assert!(
                matches!(class(ip), Some(Class::NonPublic(_))),
                "{ip}: {:?}",
                class(ip)
            );
        }
        for ip in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(class(ip), Some(Class::Loopback), "{ip}");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "169.253.255.255",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(class(ip), None, "{ip} is public");
        }
    }

    #[test]
    fn the_message_names_the_range() {
        assert!(
            class("169.254.169.254")
                .unwrap()
                .describe()
                .contains("metadata")
        );
        assert!(
            class("::ffff:172.16.0.1")
                .unwrap()
                .describe()
                .contains("RFC 1918")
        );
    }

    fn sa(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 443)
    }

    const STRICT: AddressRule = AddressRule {
        allow_loopback: false,
        allow_private: false,
    };

    #[test]
    fn screening_refuses_a_name_with_any_non_public_answer() {
        let default = AddressRule {
            allow_loopback: true,
            allow_private: false,
        };
        let e = screen(
            "jwks.example.com",
            vec![sa("93.184.216.34"), sa("10.1.2.3")],
            default,
        )
        .unwrap_err();
        assert_eq!(e.address, "10.1.2.3".parse::<IpAddr>().unwrap());
        let msg = e.to_string();
        assert!(
            msg.contains("jwks.example.com")
                && msg.contains("10.1.2.3")
                && msg.contains("RFC 1918"),
            "{msg}"
        );
        assert!(screen("a.example", vec![sa("::ffff:169.254.169.254")], default).is_err());
        // Loopback follows its own switch.
        assert!(screen("localhost", vec![sa("127.0.0.1"), sa("::1")], default).is_ok());
        let e = screen("localhost", vec![sa("127.0.0.1")], STRICT).unwrap_err();
        assert_eq!(e.class, Class::Loopback);
        // Public answers pass.
        assert!(screen("a.example", vec![sa("93.184.216.34")], STRICT).is_ok());
    }

    #[test]
    fn allow_private_addresses_lets_them_through() {
        let private = AddressRule {
            allow_loopback: false,
            allow_private: true,
        };
        for ip in [
            "10.0.0.1",
            "169.254.169.254",
            "fd00::1",
            "::ffff:192.168.1.1",
        ] {
            assert!(screen("h", vec![sa(ip)], private).is_ok(), "{ip}");
            assert!(screen("h", vec![sa(ip)], STRICT).is_err(), "{ip}");
        }
        // Loopback stays separate.
        assert!(screen("h", vec![sa("127.0.0.1")], private).is_err());
    }

    #[tokio::test]
    async fn the_resolver_screens_what_it_resolves() {
        use std::str::FromStr;
        let (lookup, calls) = table_lookup(&[
            ("internal.example", "10.9.8.7"),
            ("metadata.example", "169.254.169.254"),
            ("public.example", "93.184.216.34"),
        ]);
        let rule = AddressRule {
            allow_loopback: true,
            allow_private: false,
        };
        let r = GuardedResolver::new(rule, lookup.clone());
        for host in ["internal.example", "metadata.example"] {
            let e = r
                .resolve(Name::from_str(host).unwrap())
                .await
                .err()
                .unwrap();
            let refused = e.downcast_ref::<Refused>().unwrap();
            assert_eq!(refused.host, host);
        }
        let addrs: Vec<_> = r
            .resolve(Name::from_str("public.example").unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(
            addrs,
            vec![SocketAddr::new("93.184.216.34".parse().unwrap(), 0)]
        );
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);

        let open = GuardedResolver::new(
            AddressRule {
                allow_loopback: true,
                allow_private: true,
            },
            lookup,
        );
        assert!(
            open.resolve(Name::from_str("internal.example").unwrap())
                .await
                .is_ok()
        );
    }
}
