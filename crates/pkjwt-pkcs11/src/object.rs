//! Objects on a token: finding the one private key a URI names, listing what the token holds
//! when it does not, and reading the public key that belongs to it.
//!
//! The public key comes from (in this order) a public-key object with the same `CKA_ID`, a
//! certificate with the same `CKA_ID`, or the public attributes of the private key itself (RSA
//! keys expose modulus and exponent). `CKA_EC_POINT` is a DER OCTET STRING around the point per
//! PKCS#11 2.40, but some modules store the bare point; both are accepted. Ed25519 keys carry
//! either the OID 1.3.101.112 or the PrintableString `edwards25519` in `CKA_EC_PARAMS`.

use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use pkjwt_core::{Curve, PublicKey};

use crate::error::{KeyName, Pkcs11Error, hex, id_uri};
use crate::token::TokenRef;

/// What kind of key the private key is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Ec(Curve),
    Rsa,
    Ed25519,
}

/// The private key a signer uses, as found on the token.
#[derive(Clone, Debug)]
pub(crate) struct FoundKey {
    pub(crate) handle: ObjectHandle,
    pub(crate) label: Option<String>,
    pub(crate) id: Vec<u8>,
}

impl FoundKey {
    pub(crate) fn name(&self) -> String {
        KeyName {
            label: self.label.as_deref(),
            id: &self.id,
        }
        .to_string()
    }
}

/// The object attributes a URI selects by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ObjectSelector {
    pub(crate) label: Option<String>,
    pub(crate) id: Option<Vec<u8>>,
}

impl ObjectSelector {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(l) = &self.label {
            parts.push(format!("object={l:?}"));
        }
        if let Some(id) = &self.id {
            parts.push(format!("id={}", id_uri(id)));
        }
        parts.join(";")
    }

    fn template(&self, class: ObjectClass) -> Vec<Attribute> {
        let mut t = vec![Attribute::Class(class)];
        if let Some(l) = &self.label {
            t.push(Attribute::Label(l.as_bytes().to_vec()));
        }
        if let Some(id) = &self.id {
            t.push(Attribute::Id(id.clone()));
        }
        t
    }
}

fn call(token: &TokenRef, what: &str, e: cryptoki::error::Error) -> Pkcs11Error {
    Pkcs11Error::call(format!("{what} on token \"{}\"", token.label), e)
}

fn label_and_id(session: &Session, h: ObjectHandle) -> (Option<String>, Vec<u8>) {
    let mut label = None;
    let mut id = Vec::new();
    if let Ok(attrs) = session.get_attributes(h, &[AttributeType::Label, AttributeType::Id]) {
        for a in attrs {
            match a {
                Attribute::Label(l) => label = Some(String::from_utf8_lossy(&l).into_owned()),
                Attribute::Id(i) => id = i,
                _ => {}
            }
        }
    }
    (label, id)
}

/// Finds the one private key the selector names. Blocking.
pub(crate) fn find_private_key(
    session: &Session,
    token: &TokenRef,
    sel: &ObjectSelector,
) -> Result<FoundKey, Pkcs11Error> {
    let handles = session
        .find_objects(&sel.template(ObjectClass::PRIVATE_KEY))
        .map_err(|e| call(token, "searching for the private key", e))?;
    match handles.as_slice() {
        [h] => {
            let (label, id) = label_and_id(session, *h);
            Ok(FoundKey {
                handle: *h,
                label,
                id,
            })
        }
        [] => Err(Pkcs11Error::ObjectNotFound {
            token: token.label.clone(),
            wanted: sel.describe(),
            available: inventory(session),
        }),
        many => Err(Pkcs11Error::AmbiguousObject {
            token: token.label.clone(),
            wanted: sel.describe(),
            count: many.len(),
            candidates: many
                .iter()
                .map(|h| describe_object(session, *h))
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

/// Re-finds a key found before by its exact label and id (handles change after a re-login).
/// Label and id say nothing about which key it is: the caller compares its public key
/// ([`public_key`]) with the one it announced.
pub(crate) fn refind(
    session: &Session,
    token: &TokenRef,
    key: &FoundKey,
) -> Result<FoundKey, Pkcs11Error> {
    let sel = ObjectSelector {
        label: key.label.clone(),
        id: (!key.id.is_empty()).then(|| key.id.clone()),
    };
    find_private_key(session, token, &sel)
}

/// The public key carried by the private key's own attributes (RSA: `CKA_MODULUS` and
/// `CKA_PUBLIC_EXPONENT`; EC and Ed25519 keys on some tokens: `CKA_EC_POINT`), when it has one.
/// Unlike [`public_key`], this cannot be satisfied by a public object left behind by another key.
pub(crate) fn private_key_public_part(
    token: &TokenRef,
    key: &FoundKey,
    kind: KeyKind,
    private_attrs: &[Attribute],
) -> Result<Option<PublicKey>, Pkcs11Error> {
    from_attributes(kind, private_attrs).map_err(|reason| Pkcs11Error::UnsupportedKey {
        token: token.label.clone(),
        key: key.name(),
        reason,
    })
}

/// `private key "label" (id 01ab) EC`, for listings; never reads secret values.
pub(crate) fn describe_object(session: &Session, h: ObjectHandle) -> String {
    let attrs = session
        .get_attributes(
            h,
            &[
                AttributeType::Class,
                AttributeType::Label,
                AttributeType::Id,
                AttributeType::KeyType,
            ],
        )
        .unwrap_or_default();
    let mut class = "object";
    let mut label = None;
    let mut id = Vec::new();
    let mut kt = None;
    for a in attrs {
        match a {
            Attribute::Class(c) if c == ObjectClass::PRIVATE_KEY => class = "private key",
            Attribute::Class(c) if c == ObjectClass::PUBLIC_KEY => class = "public key",
            Attribute::Class(c) if c == ObjectClass::CERTIFICATE => class = "certificate",
            Attribute::Class(c) if c == ObjectClass::SECRET_KEY => class = "secret key",
            Attribute::Label(l) => label = Some(String::from_utf8_lossy(&l).into_owned()),
            Attribute::Id(i) => id = i,
            Attribute::KeyType(k) => kt = Some(key_type_name(k)),
            _ => {}
        }
    }
    let mut s = format!(
        "{class} {}",
        KeyName {
            label: label.as_deref(),
            id: &id
        }
    );
    if let Some(k) = kt {
        s.push_str(&format!(" {k}"));
    }
    s
}

fn key_type_name(k: KeyType) -> String {
    if k == KeyType::EC {
        "EC".into()
    } else if k == KeyType::RSA {
        "RSA".into()
    } else if k == KeyType::EC_EDWARDS {
        "EC_EDWARDS".into()
    } else {
        format!("{k}")
    }
}

/// A list of the keys and certificates visible in the session, for "not found" messages. Never
/// lists secret values: only class, label, id (hex) and key type.
pub(crate) fn inventory(session: &Session) -> String {
    const MAX: usize = 40;
    let mut items = Vec::new();
    for class in [
        ObjectClass::PRIVATE_KEY,
        ObjectClass::PUBLIC_KEY,
        ObjectClass::CERTIFICATE,
    ] {
        if let Ok(hs) = session.find_objects(&[Attribute::Class(class)]) {
            items.extend(hs.into_iter().map(|h| describe_object(session, h)));
        }
    }
    if items.is_empty() {
        return "no keys or certificates visible to this login".into();
    }
    let more = items.len().saturating_sub(MAX);
    items.truncate(MAX);
    let mut s = items.join("; ");
    if more > 0 {
        s.push_str(&format!("; and {more} more"));
    }
    s
}

/// What the private key is and whether it may sign. Blocking.
pub(crate) fn inspect_private_key(
    session: &Session,
    token: &TokenRef,
    key: &FoundKey,
) -> Result<(KeyKind, Vec<Attribute>), Pkcs11Error> {
    let attrs = session
        .get_attributes(
            key.handle,
            &[
                AttributeType::KeyType,
                AttributeType::Sign,
                AttributeType::EcParams,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
                AttributeType::EcPoint,
            ],
        )
        .map_err(|e| call(token, "reading the private key's attributes", e))?;
    let unsupported = |reason: String| Pkcs11Error::UnsupportedKey {
        token: token.label.clone(),
        key: key.name(),
        reason,
    };
    let mut kt = None;
    let mut sign = None;
    let mut params = None;
    for a in &attrs {
        match a {
            Attribute::KeyType(k) => kt = Some(*k),
            Attribute::Sign(s) => sign = Some(*s),
            Attribute::EcParams(p) => params = Some(p.clone()),
            _ => {}
        }
    }
    if sign == Some(false) {
        return Err(Pkcs11Error::KeyCannotSign {
            token: token.label.clone(),
            key: key.name(),
        });
    }
    let kind = match kt {
        Some(k) if k == KeyType::RSA => KeyKind::Rsa,
        Some(k) if k == KeyType::EC => {
            let p = params.ok_or_else(|| unsupported("EC key without CKA_EC_PARAMS".into()))?;
            KeyKind::Ec(parse_ec_params(&p).map_err(unsupported)?)
        }
        Some(k) if k == KeyType::EC_EDWARDS => {
            if let Some(p) = &params
                && !is_ed25519_params(p)
            {
                return Err(unsupported(format!(
                    "Edwards curve parameters {} are not Ed25519 (Ed448 is not a JOSE \
                         algorithm pkjwt signs with)",
                    hex(p)
                )));
            }
            KeyKind::Ed25519
        }
        Some(k) => {
            return Err(unsupported(format!(
                "key type {} cannot sign a JWS; expected EC (P-256/P-384/P-521), RSA or Ed25519",
                key_type_name(k)
            )));
        }
        None => return Err(unsupported("the token does not report CKA_KEY_TYPE".into())),
    };
    Ok((kind, attrs))
}

/// Reads the public key for `key`. Blocking.
pub(crate) fn public_key(
    session: &Session,
    token: &TokenRef,
    key: &FoundKey,
    kind: KeyKind,
    private_attrs: &[Attribute],
) -> Result<PublicKey, Pkcs11Error> {
    let unsupported = |reason: String| Pkcs11Error::UnsupportedKey {
        token: token.label.clone(),
        key: key.name(),
        reason,
    };
    if !key.id.is_empty() {
        // 1. A public-key object with the same id (and, when there are several, the same label).
        let mut tmpl = vec![
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Id(key.id.clone()),
        ];
        let mut hs = session
            .find_objects(&tmpl)
            .map_err(|e| call(token, "searching for the public key", e))?;
        if hs.len() > 1
            && let Some(l) = &key.label
        {
            tmpl.push(Attribute::Label(l.as_bytes().to_vec()));
            hs = session
                .find_objects(&tmpl)
                .map_err(|e| call(token, "searching for the public key", e))?;
        }
        if let Some(h) = hs.first() {
            let attrs = session
                .get_attributes(
                    *h,
                    &[
                        AttributeType::EcParams,
                        AttributeType::EcPoint,
                        AttributeType::Modulus,
                        AttributeType::PublicExponent,
                    ],
                )
                .map_err(|e| call(token, "reading the public key", e))?;
            if let Some(pk) = from_attributes(kind, &attrs).map_err(unsupported)? {
                return Ok(pk);
            }
        }
        // 2. A certificate with the same id.
        let hs = session
            .find_objects(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::Id(key.id.clone()),
            ])
            .map_err(|e| call(token, "searching for the certificate", e))?;
        for h in hs {
            let attrs = session
                .get_attributes(h, &[AttributeType::Value])
                .map_err(|e| call(token, "reading the certificate", e))?;
            if let Some(Attribute::Value(der)) = attrs.into_iter().next() {
                let spki = certificate_spki(&der).map_err(|e| {
                    unsupported(format!("its certificate (same id) cannot be parsed: {e}"))
                })?;
                let pk = PublicKey::from_spki_der(spki).map_err(|e| {
                    unsupported(format!("its certificate's public key is not usable: {e}"))
                })?;
                return Ok(pk);
            }
        }
    }
    // 3. The private key's own public attributes.
    if let Some(pk) = from_attributes(kind, private_attrs).map_err(unsupported)? {
        return Ok(pk);
    }
    Err(Pkcs11Error::PublicKeyNotFound {
        token: token.label.clone(),
        key: key.name(),
        id_hex: id_uri(&key.id),
    })
}

/// Builds a public key from `CKA_EC_PARAMS`/`CKA_EC_POINT` or `CKA_MODULUS`/
/// `CKA_PUBLIC_EXPONENT`; `Ok(None)` when the attributes are not there.
fn from_attributes(kind: KeyKind, attrs: &[Attribute]) -> Result<Option<PublicKey>, String> {
    let mut point = None;
    let mut params = None;
    let mut n = None;
    let mut e = None;
    for a in attrs {
        match a {
            Attribute::EcPoint(p) if !p.is_empty() => point = Some(p.as_slice()),
            Attribute::EcParams(p) if !p.is_empty() => params = Some(p.as_slice()),
            Attribute::Modulus(m) if !m.is_empty() => n = Some(m.as_slice()),
            Attribute::PublicExponent(x) if !x.is_empty() => e = Some(x.as_slice()),
            _ => {}
        }
    }
    match kind {
        KeyKind::Ec(curve) => {
            if let Some(p) = params {
                let c = parse_ec_params(p)?;
                if c != curve {
                    return Err(format!(
                        "its public key is on {c}, the private key on {curve}"
                    ));
                }
            }
            let Some(point) = point else { return Ok(None) };
            let raw = unwrap_ec_point(point, 1 + 2 * curve.field_len());
            PublicKey::ec_from_point(curve, raw)
                .map(Some)
                .map_err(|e| format!("CKA_EC_POINT: {e}"))
        }
        KeyKind::Ed25519 => {
            let Some(point) = point else { return Ok(None) };
            let raw = unwrap_ec_point(point, 32);
            PublicKey::ed25519(raw)
                .map(Some)
                .map_err(|e| format!("CKA_EC_POINT: {e}"))
        }
        KeyKind::Rsa => match (n, e) {
            (Some(n), Some(e)) => PublicKey::rsa(n, e).map(Some).map_err(|e| e.to_string()),
            _ => Ok(None),
        },
    }
}

/// `CKA_EC_POINT` is `OCTET STRING { point }` per PKCS#11 2.40 §2.3.3, but some modules store
/// the bare point. A value exactly as long as the bare point is taken as bare (a wrapped value
/// is always longer); otherwise the OCTET STRING is unwrapped when it parses.
pub(crate) fn unwrap_ec_point(v: &[u8], raw_len: usize) -> &[u8] {
    if v.len() == raw_len {
        return v;
    }
    match read_tlv(v) {
        Some((0x04, body, [])) => body,
        _ => v,
    }
}

/// Curve from `CKA_EC_PARAMS` (a DER namedCurve OID).
pub(crate) fn parse_ec_params(p: &[u8]) -> Result<Curve, String> {
    match read_tlv(p) {
        Some((0x06, oid, [])) => Curve::from_oid(oid).ok_or_else(|| {
            format!(
                "curve OID {} is not one pkjwt signs with; expected P-256, P-384, P-521 or secp256k1",
                hex(oid)
            )
        }),
        _ => Err(format!(
            "CKA_EC_PARAMS {} is not a named-curve OID (explicit curve parameters are not supported)",
            hex(p)
        )),
    }
}

/// OID 1.3.101.112 (id-Ed25519, RFC 8410).
pub(crate) const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
/// OID 1.3.6.1.4.1.11591.15.1 (the older GnuPG Ed25519 OID some tools still write).
const OID_ED25519_GNU: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01];

/// True for the Ed25519 encodings of `CKA_EC_PARAMS`: the OID, or the PrintableString
/// `edwards25519` (PKCS#11 3.0 §2.3.10 allows curve names).
pub(crate) fn is_ed25519_params(p: &[u8]) -> bool {
    match read_tlv(p) {
        Some((0x06, oid, [])) => oid == OID_ED25519 || oid == OID_ED25519_GNU,
        Some((0x13 | 0x0c, name, [])) => name == b"edwards25519" || name == b"Ed25519",
        _ => false,
    }
}

/// Reads one DER TLV: `(tag, contents, rest)`. Definite lengths up to 4 bytes only.
fn read_tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = b.split_first()?;
    let (&l0, rest) = rest.split_first()?;
    let (len, rest) = if l0 < 0x80 {
        (l0 as usize, rest)
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &x| (acc << 8) | x as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The `index`-th element of a DER certificate's tbsCertificate, counting from serialNumber
/// (the optional `[0]` version is skipped): 4 is the subject, 5 the subjectPublicKeyInfo
/// (RFC 5280 §4.1). `name` labels errors. Must be a SEQUENCE.
fn tbs_sequence<'a>(
    der: &'a [u8],
    index: usize,
    name: &'static str,
) -> Result<&'a [u8], &'static str> {
    let (tag, cert, _) = read_tlv(der).ok_or("not DER")?;
    if tag != 0x30 {
        return Err("Certificate is not a SEQUENCE");
    }
    let (tag, mut tbs, _) = read_tlv(cert).ok_or("no tbsCertificate")?;
    if tag != 0x30 {
        return Err("tbsCertificate is not a SEQUENCE");
    }
    let skip = index + usize::from(tbs.first() == Some(&0xa0));
    for _ in 0..skip {
        let (_, _, rest) = read_tlv(tbs).ok_or("truncated tbsCertificate")?;
        tbs = rest;
    }
    let (tag, _, rest) = read_tlv(tbs).ok_or(name)?;
    if tag != 0x30 {
        return Err(name);
    }
    Ok(&tbs[..tbs.len() - rest.len()])
}

/// The DER `subject` Name of a DER certificate (for `CKA_SUBJECT`).
pub(crate) fn certificate_subject(der: &[u8]) -> Result<&[u8], &'static str> {
    tbs_sequence(der, 4, "no subject SEQUENCE")
}

/// The DER certificates stored with the key's id (`CKO_CERTIFICATE`, same `CKA_ID`).
pub(crate) fn certificates(
    session: &Session,
    token: &TokenRef,
    key: &FoundKey,
) -> Result<Vec<Vec<u8>>, Pkcs11Error> {
    if key.id.is_empty() {
        return Ok(Vec::new());
    }
    let call = |what: &str, e| Pkcs11Error::call(format!("{what} on token \"{}\"", token.label), e);
    let hs = session
        .find_objects(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Id(key.id.clone()),
        ])
        .map_err(|e| call("searching for the key's certificate", e))?;
    let mut out = Vec::new();
    for h in hs {
        let attrs = session
            .get_attributes(h, &[AttributeType::Value])
            .map_err(|e| call("reading the key's certificate", e))?;
        if let Some(Attribute::Value(der)) = attrs.into_iter().next()
            && certificate_spki(&der).is_ok()
        {
            out.push(der);
        }
    }
    Ok(out)
}

/// The DER `SubjectPublicKeyInfo` inside an X.509 certificate (RFC 5280 §4.1).
pub(crate) fn certificate_spki(der: &[u8]) -> Result<&[u8], &'static str> {
    tbs_sequence(der, 5, "no subjectPublicKeyInfo SEQUENCE")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_point_wrapped_or_bare() {
        let mut bare = vec![4u8];
        bare.extend([7u8; 64]);
        let mut wrapped = vec![0x04, 0x41];
        wrapped.extend(&bare);
        assert_eq!(unwrap_ec_point(&bare, 65), &bare[..]);
        assert_eq!(unwrap_ec_point(&wrapped, 65), &bare[..]);
        let ed = [9u8; 32];
        let mut ed_wrapped = vec![0x04, 0x20];
        ed_wrapped.extend(ed);
        assert_eq!(unwrap_ec_point(&ed, 32), &ed[..]);
        assert_eq!(unwrap_ec_point(&ed_wrapped, 32), &ed[..]);
        // P-521: 133-byte point, wrapped with a long-form length.
        let mut p521 = vec![4u8];
        p521.extend([1u8; 132]);
        let mut p521w = vec![0x04, 0x81, 133];
        p521w.extend(&p521);
        assert_eq!(unwrap_ec_point(&p521w, 133), &p521[..]);
    }

    #[test]
    fn ec_params() {
        let p256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        assert_eq!(parse_ec_params(&p256), Ok(Curve::P256));
        assert!(parse_ec_params(&[0x06, 0x03, 0x2b, 0x65, 0x70]).is_err());
        assert!(
            parse_ec_params(&[0x30, 0x00])
                .unwrap_err()
                .contains("explicit")
        );
        assert!(is_ed25519_params(&[0x06, 0x03, 0x2b, 0x65, 0x70]));
        let mut s = vec![0x13, 12];
        s.extend(b"edwards25519");
        assert!(is_ed25519_params(&s));
        let mut s = vec![0x13, 10];
        s.extend(b"edwards448");
        assert!(!is_ed25519_params(&s));
    }

    #[test]
    fn spki_from_certificate_shape() {
        // A minimal certificate-shaped structure: version, serial, sigalg, issuer, validity,
        // subject, SPKI.
        let spki = [0x30, 0x03, 0x02, 0x01, 0x05];
        let mut tbs = vec![0xa0, 0x03, 0x02, 0x01, 0x02];
        tbs.extend([0x02, 0x01, 0x01]);
        tbs.extend([0x30, 0x00, 0x30, 0x00, 0x30, 0x00, 0x30, 0x00]);
        tbs.extend(spki);
        let mut tbs_seq = vec![0x30, tbs.len() as u8];
        tbs_seq.extend(&tbs);
        let mut cert = vec![0x30, (tbs_seq.len() + 2) as u8];
        cert.extend(&tbs_seq);
        cert.extend([0x30, 0x00]);
        assert_eq!(certificate_spki(&cert), Ok(&spki[..]));
        assert!(certificate_spki(&[0x30, 0x02, 0x02, 0x00]).is_err());
    }
}
