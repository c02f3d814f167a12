//! The agent's configuration file (TOML): an `[agent]` table for where and how it listens, and
//! one `[profile.NAME]` table per client it fetches tokens for. Everything is checked when the
//! file is loaded; each error names the profile (or `[agent]`) and the field, and says what was
//! expected.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read (the I/O error is the source).
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown or mistyped field.
    #[error("{origin}: {reason}")]
    Syntax {
        /// The file (or `<string>`).
        origin: String,
        /// The parser's message (it names the line and the field).
        reason: String,
    },
    /// A field has a value that cannot work.
    #[error("{origin}: {section}: {field}: {reason}")]
    Invalid {
        /// The file (or `<string>`).
        origin: String,
        /// `[agent]` or `[profile.NAME]`.
        section: String,
        /// The field.
        field: &'static str,
        /// What was wrong and what was expected.
        reason: String,
    },
}

/// The whole configuration.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AgentConfig {
    /// Listening and cache settings.
    pub agent: AgentSettings,
    /// Client profiles by name.
    pub profiles: BTreeMap<String, ProfileConfig>,
}

/// The `[agent]` table.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct AgentSettings {
    /// The Unix socket's path.
    pub socket: PathBuf,
    /// The socket file's permission bits (default 0600; 0660 when `socket_group` is set).
    pub socket_mode: u32,
    /// The group that owns the socket (a name from /etc/group or a number).
    pub socket_group: Option<u32>,
    /// When set, only these user ids (SO_PEERCRED) may use the socket.
    pub allowed_uids: Option<Vec<u32>>,
    /// Also answer over HTTP on this loopback address.
    pub http_listen: Option<SocketAddr>,
    /// Refresh a token at this fraction of its lifetime (default 0.75).
    pub refresh_fraction: f64,
    /// Bring refreshes forward by a random part of up to this fraction of the lifetime
    /// (default 0.05).
    pub jitter: f64,
    /// How often the configuration file and the profiles' rotation states are checked for
    /// changes (default 5 s; zero turns the check off, leaving SIGHUP).
    pub watch_interval: std::time::Duration,
}

/// Where a profile's key comes from.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySource {
    /// A key URI (file:…, pkcs11:…, awskms:…).
    Uri(String),
    /// A `pkjwt rotate` state file: the key that signs now, followed as the state changes.
    RotationState(PathBuf),
}

impl KeySource {
    /// The key URI that signs at `now` (Unix seconds): the URI itself, or the rotation state's
    /// signing key.
    pub fn resolve(&self, now: i64) -> Result<String, String> {
        match self {
            KeySource::Uri(u) => Ok(u.clone()),
            KeySource::RotationState(path) => {
                let st = pkjwt_jwks::RotationState::load(path)
                    .map_err(|e| format!("{}: {}", path.display(), pkjwt::display_chain(&e)))?;
                st.signing(now).map(|k| k.uri.clone()).ok_or_else(|| {
                    format!(
                        "{}: no key signs now (run `pkjwt rotate init`)",
                        path.display()
                    )
                })
            }
        }
    }
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Only the scheme: a pkcs11 URI may carry a pin-value.
            KeySource::Uri(u) => {
                let scheme = u.split_once(':').map_or("file", |(s, _)| s);
                write!(f, "Uri({scheme}:…)")
            }
            KeySource::RotationState(p) => f.debug_tuple("RotationState").field(p).finish(),
        }
    }
}

/// A `[profile.NAME]` table: one client and the token it gets. Its `Debug` shows only the key
/// URI's scheme: a `pkcs11:` URI may carry a `pin-value`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ProfileConfig {
    /// The key: `key = URI` or `rotation_state = PATH`.
    pub key: KeySource,
    /// The signing algorithm, when not derived from the key.
    pub alg: Option<pkjwt::Algorithm>,
    /// Issuer identifier.
    pub issuer: String,
    /// client_id.
    pub client_id: String,
    /// Scope to ask for.
    pub scope: Option<String>,
    /// Server profile name (pkjwt_client::Profile: standard, fapi2, keycloak, entra, okta,
    /// legacy).
    pub server_profile: String,
    /// Resource indicators (RFC 8707).
    pub resources: Vec<String>,
    /// Accept a key file that group or others can read (as `--allow-insecure-key-permissions`).
    pub allow_insecure_key_permissions: bool,
    /// A PEM certificate chain of the key (leaf first): its `x5t#S256` goes into assertions when
    /// the server profile needs one (entra). Without it, the chain kept with the key is used.
    pub certificate: Option<PathBuf>,
    /// `POST /assertion` answers for this profile (off by default).
    pub assertions: bool,
    /// The audiences `POST /assertion` signs for; empty = the issuer and its token endpoint.
    pub assertion_audiences: Vec<String>,
}

impl ProfileConfig {
    /// True when a token fetched under `self` is good under `other` too: same server, client,
    /// scope, resources and server profile (the key may differ: a rotated key authenticates
    /// the same client).
    pub fn same_token_as(&self, other: &ProfileConfig) -> bool {
        self.issuer == other.issuer
            && self.client_id == other.client_id
            && self.scope == other.scope
            && self.resources == other.resources
            && self.server_profile == other.server_profile
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    agent: RawAgent,
    #[serde(default)]
    profile: BTreeMap<String, RawProfile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    socket: PathBuf,
    socket_mode: Option<String>,
    socket_group: Option<toml::Value>,
    allowed_uids: Option<Vec<i64>>,
    http_listen: Option<String>,
    refresh_fraction: Option<f64>,
    jitter: Option<f64>,
    watch_interval_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    key: Option<String>,
    rotation_state: Option<PathBuf>,
    alg: Option<String>,
    issuer: String,
    client_id: String,
    scope: Option<String>,
    server_profile: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    allow_insecure_key_permissions: bool,
    certificate: Option<PathBuf>,
    #[serde(default)]
    assertions: bool,
    #[serde(default)]
    assertion_audiences: Vec<String>,
}

impl AgentConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            reason: pkjwt::escape_controls(&e.to_string()).into_owned(),
        })?;
        let bad = |section: &str, field: &'static str, reason: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            section: section.to_owned(),
            field,
            reason,
        };
        let a = raw.agent;
        const AGENT: &str = "[agent]";
        if !a.socket.is_absolute() {
            return Err(bad(
                AGENT,
                "socket",
                format!("{:?} is relative; expected an absolute path", a.socket),
            ));
        }
        let socket_group = match &a.socket_group {
            None => None,
            Some(v) => Some(resolve_group(v).map_err(|r| bad(AGENT, "socket_group", r))?),
        };
        let socket_mode = match &a.socket_mode {
            None if socket_group.is_some() => 0o660,
            None => 0o600,
            Some(m) => {
                let digits = m.strip_prefix("0o").unwrap_or(m);
                let mode = u32::from_str_radix(digits, 8).map_err(|_| {
                    bad(
                        AGENT,
                        "socket_mode",
                        format!("{m:?} is not an octal mode; expected for example \"0600\""),
                    )
                })?;
                // Others never get access: the socket's permissions are the first check on who
                // may get tokens, and "others" is every account on the host.
                if mode & !0o770 != 0 || mode & 0o600 != 0o600 {
                    return Err(bad(
                        AGENT,
                        "socket_mode",
                        format!(
                            "{m:?}: expected 0600, 0620/0640/0660 (with socket_group) — the owner \
                             reads and writes, others get nothing"
                        ),
                    ));
                }
                if mode & 0o070 != 0 && socket_group.is_none() {
                    return Err(bad(
                        AGENT,
                        "socket_mode",
                        format!(
                            "{m:?} gives a group access, but socket_group is not set; set it or use 0600"
                        ),
                    ));
                }
                mode
            }
        };
        let allowed_uids = match a.allowed_uids {
            None => None,
            Some(list) => {
                let mut out = Vec::with_capacity(list.len());
                for n in list {
                    out.push(u32::try_from(n).map_err(|_| {
                        bad(
                            AGENT,
                            "allowed_uids",
                            format!("{n} is not a user id (0 to {})", u32::MAX),
                        )
                    })?);
                }
                if out.is_empty() {
                    return Err(bad(
                        AGENT,
                        "allowed_uids",
                        "is empty, which would refuse every caller; leave it out to rely on the \
                         socket's permissions"
                            .into(),
                    ));
                }
                Some(out)
            }
        };
        let http_listen = match &a.http_listen {
            None => None,
            Some(s) => {
                let addr: SocketAddr = s.parse().map_err(|_| {
                    bad(
                        AGENT,
                        "http_listen",
                        format!(
                            "{s:?} is not an address:port; expected for example \"127.0.0.1:8790\""
                        ),
                    )
                })?;
                if !addr.ip().is_loopback() {
                    return Err(bad(
                        AGENT,
                        "http_listen",
                        format!(
                            "{addr} is not a loopback address; the agent answers only on \
                             127.0.0.0/8 or ::1 (tokens must not leave the host)"
                        ),
                    ));
                }
                if allowed_uids.is_some() {
                    return Err(bad(
                        AGENT,
                        "http_listen",
                        "cannot be combined with allowed_uids: a TCP caller's user id is unknown, \
                         so the allow-list could not be enforced there"
                            .into(),
                    ));
                }
                Some(addr)
            }
        };
        let refresh_fraction = a.refresh_fraction.unwrap_or(0.75);
        if !(refresh_fraction > 0.0 && refresh_fraction < 1.0) {
            return Err(bad(
                AGENT,
                "refresh_fraction",
                format!("{refresh_fraction} is outside (0, 1); expected for example 0.75"),
            ));
        }
        let jitter = a.jitter.unwrap_or(0.05);
        if !(0.0..=0.5).contains(&jitter) || jitter >= refresh_fraction {
            return Err(bad(
                AGENT,
                "jitter",
                format!(
                    "{jitter}: expected 0 to 0.5 and less than refresh_fraction ({refresh_fraction})"
                ),
            ));
        }

        if raw.profile.is_empty() {
            return Err(bad(
                "[profile.NAME]",
                "profile",
                "no profile is configured; expected at least one [profile.NAME] table".into(),
            ));
        }
        let mut profiles = BTreeMap::new();
        for (name, p) in raw.profile {
            let section = format!("[profile.{name}]");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(bad(
                    &pkjwt::escape_controls(&section),
                    "name",
                    "expected letters, digits, '-', '_' or '.' (the name goes in a URL query)"
                        .into(),
                ));
            }
            let key = match (p.key, p.rotation_state) {
                (Some(k), None) => {
                    if let Err(e) = pkjwt::KeyUri::parse(&k) {
                        // The parse error describes the scheme problem; the URI itself is not
                        // repeated (a pkcs11 URI may carry a pin-value).
                        return Err(bad(&section, "key", e.to_string()));
                    }
                    KeySource::Uri(k)
                }
                (None, Some(path)) => {
                    if !path.is_absolute() {
                        return Err(bad(
                            &section,
                            "rotation_state",
                            format!("{path:?} is relative; expected an absolute path"),
                        ));
                    }
                    KeySource::RotationState(path)
                }
                (Some(_), Some(_)) => {
                    return Err(bad(
                        &section,
                        "key",
                        "give either key or rotation_state, not both".into(),
                    ));
                }
                (None, None) => {
                    return Err(bad(
                        &section,
                        "key",
                        "missing; expected key = \"URI\" or rotation_state = \"/path/state.json\""
                            .into(),
                    ));
                }
            };
            if let Some(c) = &p.certificate
                && !c.is_absolute()
            {
                return Err(bad(
                    &section,
                    "certificate",
                    format!("{c:?} is relative; expected an absolute path"),
                ));
            }
            for a in &p.assertion_audiences {
                if !(a.starts_with("https://") || a.starts_with("http://")) {
                    return Err(bad(
                        &section,
                        "assertion_audiences",
                        format!("{a:?}: expected an absolute http(s) URL"),
                    ));
                }
            }
            if !p.assertions && !p.assertion_audiences.is_empty() {
                return Err(bad(
                    &section,
                    "assertion_audiences",
                    "is set but assertions is false; set assertions = true to serve POST /assertion"
                        .into(),
                ));
            }
            let alg = match &p.alg {
                None => None,
                Some(s) => Some(
                    s.parse::<pkjwt::Algorithm>()
                        .map_err(|e| bad(&section, "alg", e.to_string()))?,
                ),
            };
            let issuer = p.issuer.trim().to_owned();
            if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
                return Err(bad(
                    &section,
                    "issuer",
                    format!("{issuer:?}: expected an https:// URL (http:// for loopback tests)"),
                ));
            }
            if p.client_id.is_empty() {
                return Err(bad(&section, "client_id", "is empty".into()));
            }
            if p.scope.as_deref().is_some_and(|s| s.trim().is_empty()) {
                return Err(bad(
                    &section,
                    "scope",
                    "is empty; leave it out to ask for none".into(),
                ));
            }
            let server_profile = p.server_profile.unwrap_or_else(|| "standard".into());
            if let Err(e) = pkjwt_client::Profile::named(&server_profile) {
                return Err(bad(&section, "server_profile", e.to_string()));
            }
            for r in &p.resources {
                if !r.contains("://") {
                    return Err(bad(
                        &section,
                        "resources",
                        format!("{r:?}: expected an absolute URI (RFC 8707)"),
                    ));
                }
            }
            profiles.insert(
                name,
                ProfileConfig {
                    key,
                    alg,
                    issuer,
                    client_id: p.client_id,
                    scope: p.scope,
                    server_profile,
                    resources: p.resources,
                    allow_insecure_key_permissions: p.allow_insecure_key_permissions,
                    certificate: p.certificate,
                    assertions: p.assertions,
                    assertion_audiences: p.assertion_audiences,
                },
            );
        }
        Ok(AgentConfig {
            agent: AgentSettings {
                socket: a.socket,
                socket_mode,
                socket_group,
                allowed_uids,
                http_listen,
                refresh_fraction,
                jitter,
                watch_interval: std::time::Duration::from_secs(a.watch_interval_secs.unwrap_or(5)),
            },
            profiles,
        })
    }
}

/// A group number, or a name looked up in /etc/group.
fn resolve_group(v: &toml::Value) -> Result<u32, String> {
    match v {
        toml::Value::Integer(n) => {
            u32::try_from(*n).map_err(|_| format!("{n} is not a group id (0 to {})", u32::MAX))
        }
        toml::Value::String(name) => {
            let groups = std::fs::read_to_string("/etc/group")
                .map_err(|e| format!("cannot read /etc/group to find {name:?}: {e}"))?;
            groups
                .lines()
                .filter_map(|l| {
                    let mut f = l.split(':');
                    let n = f.next()?;
                    let gid = f.nth(1)?.parse::<u32>().ok()?;
                    (n == name).then_some(gid)
                })
                .next()
                .ok_or_else(|| {
                    format!(
                        "no group named {name:?} in /etc/group; expected a group name or number"
                    )
                })
        }
        other => Err(format!(
            "a {}: expected a group name (string) or number",
            other.type_str()
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const PROFILE: &str = r#"
[profile.billing]
key = "file:/etc/pkjwt/billing.pem"
issuer = "https://as.example"
client_id = "billing"
"#;

    fn parse(agent: &str) -> Result<AgentConfig, ConfigError> {
        AgentConfig::parse(&format!("[agent]\n{agent}\n{PROFILE}"), "agent.toml")
    }

    #[test]
    fn defaults() {
        let c = parse("socket = \"/run/pkjwt/agent.sock\"").unwrap();
        assert_eq!(c.agent.socket_mode, 0o600);
        assert_eq!(c.agent.refresh_fraction, 0.75);
        let p = &c.profiles["billing"];
        assert_eq!(p.server_profile, "standard");
        assert!(c.agent.http_listen.is_none());
    }

    #[test]
    fn debug_hides_the_key_uri() {
        let text = "[agent]\nsocket = \"/run/a.sock\"\n[profile.hsm]\n\
                    key = \"pkcs11:token=t;object=k?pin-value=123456\"\n\
                    issuer = \"https://as.example\"\nclient_id = \"c\"\n";
        let c = AgentConfig::parse(text, "a.toml").unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("123456") && shown.contains("pkcs11:…"),
            "{shown}"
        );
    }

    #[test]
    fn non_loopback_http_is_refused() {
        for addr in ["0.0.0.0:8790", "192.0.2.1:80", "[::]:8790"] {
            let e = parse(&format!(
                "socket = \"/run/a.sock\"\nhttp_listen = \"{addr}\""
            ))
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("[agent]: http_listen") && e.contains("not a loopback address"),
                "{e}"
            );
        }
        let c = parse("socket = \"/run/a.sock\"\nhttp_listen = \"[::1]:8790\"").unwrap();
        assert!(c.agent.http_listen.unwrap().ip().is_loopback());
    }

    #[test]
    fn modes_that_open_the_socket_to_others_are_refused() {
        for m in ["0666", "0606", "0400", "0660", "x"] {
            let e = parse(&format!("socket = \"/run/a.sock\"\nsocket_mode = \"{m}\""))
                .unwrap_err()
                .to_string();
            assert!(e.contains("socket_mode"), "{m}: {e}");
        }
        let c = parse("socket = \"/run/a.sock\"\nsocket_group = 0").unwrap();
        assert_eq!(
            (c.agent.socket_mode, c.agent.socket_group),
            (0o660, Some(0))
        );
    }

    #[test]
    fn errors_name_profile_and_field() {
        let text = "[agent]\nsocket = \"/run/a.sock\"\n[profile.p1]\nkey = \"file:k.pem\"\nissuer = \"https://as\"\nclient_id = \"c\"\nserver_profile = \"nope\"\n";
        let e = AgentConfig::parse(text, "a.toml").unwrap_err().to_string();
        assert!(
            e.starts_with("a.toml: [profile.p1]: server_profile: "),
            "{e}"
        );
        let text = "[agent]\nsocket = \"/run/a.sock\"\n[profile.p1]\nkey = \"file:k.pem\"\nissuer = \"https://as\"\nclient_id = \"c\"\nscopes = \"x\"\n";
        let e = AgentConfig::parse(text, "a.toml").unwrap_err().to_string();
        assert!(e.contains("scopes"), "{e}");
        let e = parse("socket = \"rel.sock\"").unwrap_err().to_string();
        assert!(e.contains("[agent]: socket: "), "{e}");
        let e = parse("socket = \"/a.sock\"\nallowed_uids = [1]\nhttp_listen = \"127.0.0.1:1\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("allowed_uids"), "{e}");
    }
}
