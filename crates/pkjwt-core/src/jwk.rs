//! JSON Web Keys (RFC 7517, RFC 7518 §6, RFC 8037) and RFC 7638 thumbprints.
//!
//! Only public keys are represented here: parsing refuses a JWK that carries private members, so
//! a JWKS meant for publication can never leak one by accident.

use std::collections::BTreeMap;
use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::{Algorithm, Curve, Error, PublicKey, Result, b64};

/// Members that only private JWKs have (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A public JSON Web Key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `EC`, `RSA` or `OKP`.
    pub kty: String,
    /// Curve (`EC`, `OKP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// x coordinate (`EC`) or public key (`OKP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// y coordinate (`EC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// Modulus (`RSA`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// Public exponent (`RSA`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Intended use; pkjwt publishes `sig`.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Algorithm the key is used with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Certificate chain, standard base64 DER, leaf first (RFC 7517 §4.7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x5c: Option<Vec<String>>,
    /// base64url SHA-256 of the DER leaf certificate (RFC 7517 §4.9).
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
    /// base64url SHA-1 of the DER leaf certificate (RFC 7517 §4.8), for servers that want it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x5t: Option<String>,
    /// Any other members, kept so that a parsed JWK serializes back unchanged.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl Jwk {
    /// The public JWK of `key`, with `kid` = RFC 7638 thumbprint, `use: sig` and `alg`.
    pub fn for_signing(key: &PublicKey, alg: Algorithm) -> Jwk {
        let mut jwk = Jwk::from_public_key(key);
        jwk.kid = Some(thumbprint(key));
        jwk.use_ = Some("sig".into());
        jwk.alg = Some(alg.name().into());
        jwk
    }

    /// The JWK to publish for a signing key: `kid` = RFC 7638 thumbprint, `use: sig`, and an
    /// `alg` only where the algorithm is determined (see [`published_alg`]). Unlike
    /// [`Jwk::for_signing`], an RSA key without `asked` gets no `alg`: such a key can sign
    /// RS256…RS512 and PS256…PS512, and pinning one would make strict verifiers (which skip a
    /// key whose `alg` differs from the token's, RFC 7517 §4.4) refuse the others.
    pub fn for_publication(key: &PublicKey, asked: Option<Algorithm>) -> Result<Jwk> {
        let mut jwk = Jwk::from_public_key(key);
        jwk.kid = Some(thumbprint(key));
        jwk.use_ = Some("sig".into());
        jwk.alg = published_alg(key, asked)?.map(|a| a.name().into());
        Ok(jwk)
    }

    /// The bare public JWK of `key` (only the required members).
    pub fn from_public_key(key: &PublicKey) -> Jwk {
        let mut jwk = Jwk {
            kty: String::new(),
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
            kid: None,
            use_: None,
            alg: None,
            x5c: None,
            x5t_s256: None,
            x5t: None,
            other: BTreeMap::new(),
        };
        match key {
            PublicKey::Ec { curve, x, y } => {
                jwk.kty = "EC".into();
                jwk.crv = Some(curve.jwk_name().into());
                jwk.x = Some(b64::encode(x));
                jwk.y = Some(b64::encode(y));
            }
            PublicKey::Rsa { n, e } => {
                jwk.kty = "RSA".into();
                jwk.n = Some(b64::encode(n));
                jwk.e = Some(b64::encode(e));
            }
            PublicKey::Ed25519(x) => {
                jwk.kty = "OKP".into();
                jwk.crv = Some("Ed25519".into());
                jwk.x = Some(b64::encode(x));
            }
        }
        jwk
    }

    /// Sets the `kid`.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Jwk {
        self.kid = Some(kid.into());
        self
    }

    /// Parses one public JWK from JSON text.
    pub fn from_json(text: &str) -> Result<Jwk> {
        let value: serde_json::Value = parse_json_no_duplicates(text)?;
        Jwk::from_value(value)
    }

    fn from_value(value: serde_json::Value) -> Result<Jwk> {
        let obj = value
            .as_object()
            .ok_or_else(|| Error::jwk("a JWK must be a JSON object"))?;
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
            return Err(Error::jwk(format!(
                "member \"{m}\" is private key material; a public JWK or JWKS must not contain it"
            )));
        }
        let jwk: Jwk = serde_json::from_value(value)
            .map_err(|e| Error::jwk(format!("unexpected member type: {e}")))?;
        jwk.check_public()?;
        Ok(jwk)
    }

    /// Checks a JWK built or deserialized by other means (a state file, a configuration) the
    /// way [`Jwk::from_json`] checks what it parses: no private key member, key material that
    /// decodes strictly to a supported key, and an `alg`, if it is a known one, that fits it.
    pub fn check_public(&self) -> Result<()> {
        if let Some(m) = PRIVATE_MEMBERS
            .iter()
            .find(|m| self.other.contains_key(**m))
        {
            return Err(Error::jwk(format!(
                "member \"{m}\" is private key material; a public JWK or JWKS must not contain it"
            )));
        }
        let key = self.to_public_key()?;
        if let Some(alg) = &self.alg {
            // An unknown alg is not an error in a JWK (RFC 7517 §4.4), but a known one that does
            // not fit the key is.
            if let Ok(a) = alg.parse::<Algorithm>() {
                key.resolve_algorithm(Some(a))?;
            }
        }
        Ok(())
    }

    /// Decodes the key material, strictly: EC coordinates must be exactly the field size
    /// (RFC 7518 §6.2.1.2), RSA numbers without leading zeros (§6.3.1.1), base64url canonical.
    pub fn to_public_key(&self) -> Result<PublicKey> {
        let need = |name: &str, v: &Option<String>| -> Result<Vec<u8>> {
            let s = v.as_deref().ok_or_else(|| {
                Error::jwk(format!(
                    "kty \"{}\" requires member \"{name}\", which is missing",
                    self.kty
                ))
            })?;
            b64::decode(&format!("member \"{name}\""), s)
        };
        match self.kty.as_str() {
            "EC" => {
                let crv = self.crv.as_deref().ok_or_else(|| {
                    Error::jwk("kty \"EC\" requires member \"crv\", which is missing")
                })?;
                let curve = Curve::from_jwk_name(crv).ok_or_else(|| {
                    Error::jwk(format!(
                        "unsupported EC curve \"{crv}\"; expected P-256, P-384, P-521 or secp256k1"
                    ))
                })?;
                let x = need("x", &self.x)?;
                let y = need("y", &self.y)?;
                let field = curve.field_len();
                for (name, v) in [("x", &x), ("y", &y)] {
                    if v.len() != field {
                        return Err(Error::jwk(format!(
                            "member \"{name}\" of a {curve} key must be {field} bytes, got {}",
                            v.len()
                        )));
                    }
                }
                PublicKey::ec(curve, &x, &y)
            }
            "RSA" => {
                let n = need("n", &self.n)?;
                let e = need("e", &self.e)?;
                for (name, v) in [("n", &n), ("e", &e)] {
                    if v.first() == Some(&0) {
                        return Err(Error::jwk(format!(
                            "member \"{name}\" has a leading zero byte; RFC 7518 §6.3.1 requires the minimal encoding"
                        )));
                    }
                }
                PublicKey::rsa(&n, &e)
            }
            "OKP" => {
                let crv = self.crv.as_deref().ok_or_else(|| {
                    Error::jwk("kty \"OKP\" requires member \"crv\", which is missing")
                })?;
                if crv != "Ed25519" {
                    return Err(Error::jwk(format!(
                        "unsupported OKP curve \"{crv}\"; expected Ed25519"
                    )));
                }
                let x = need("x", &self.x)?;
                PublicKey::ed25519(&x).map_err(|e| Error::jwk(e.to_string()))
            }
            "oct" => Err(Error::jwk(
                "kty \"oct\" is a symmetric key; private_key_jwt needs a public key (EC, RSA or OKP)",
            )),
            other => Err(Error::jwk(format!(
                "unsupported kty \"{other}\"; expected EC, RSA or OKP"
            ))),
        }
    }

    /// Serializes to compact JSON.
    pub fn to_json(&self) -> String {
        // Invariant: a Jwk is strings, lists and JSON values only; serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The `alg` a published JWK of `key` carries: `asked`, when given (an error if the key cannot
/// sign with it); else the key's algorithm when its type fixes one (EC: the curve's ES*, Ed25519:
/// EdDSA); else — an RSA key, which signs RS* and PS* alike — none, so that the JWK verifies
/// whichever RSA algorithm the client signs with.
pub fn published_alg(key: &PublicKey, asked: Option<Algorithm>) -> Result<Option<Algorithm>> {
    match (asked, key) {
        (Some(a), _) => key.resolve_algorithm(Some(a)).map(Some),
        (None, PublicKey::Rsa { .. }) => Ok(None),
        (None, _) => Ok(Some(key.default_algorithm())),
    }
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url) of a public key.
pub fn thumbprint(key: &PublicKey) -> String {
    // Required members only, in lexicographic order, no whitespace (RFC 7638 §3.2). The values
    // are base64url, which needs no JSON escaping.
    let json = match key {
        PublicKey::Ec { curve, x, y } => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            curve.jwk_name(),
            b64::encode(x),
            b64::encode(y)
        ),
        PublicKey::Rsa { n, e } => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            b64::encode(e),
            b64::encode(n)
        ),
        PublicKey::Ed25519(x) => {
            format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                b64::encode(x)
            )
        }
    };
    b64::encode(sha2::Sha256::digest(json.as_bytes()))
}

/// A JWK Set (RFC 7517 §5) in which every `kid` is unique.
#[derive(Clone, Debug, PartialEq, Serialize, Default)]
pub struct JwkSet {
    keys: Vec<Jwk>,
}

impl JwkSet {
    /// Builds a set, refusing two keys with one `kid`.
    pub fn new(keys: Vec<Jwk>) -> Result<JwkSet> {
        let mut seen = HashSet::new();
        for k in &keys {
            if let Some(kid) = &k.kid
                && !seen.insert(kid.as_str())
            {
                return Err(Error::DuplicateKid(kid.clone()));
            }
        }
        Ok(JwkSet { keys })
    }

    /// The keys.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// Finds a key by `kid`.
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }

    /// Parses a JWKS from JSON text. Keys of a `kty` pkjwt does not understand are skipped, as
    /// RFC 7517 §5 asks; a malformed key of a known type, private members, duplicate kids or
    /// duplicate JSON members are errors naming the key's position.
    pub fn from_json(text: &str) -> Result<JwkSet> {
        let value = parse_json_no_duplicates(text)?;
        let obj = value
            .as_object()
            .ok_or_else(|| Error::jwk("a JWK set must be a JSON object with a \"keys\" array"))?;
        let keys = obj
            .get("keys")
            .ok_or_else(|| Error::jwk("a JWK set needs a \"keys\" member"))?
            .as_array()
            .ok_or_else(|| Error::jwk("\"keys\" must be an array"))?;
        let mut out = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let kty = k.get("kty").and_then(|v| v.as_str()).unwrap_or("");
            if !matches!(kty, "EC" | "RSA" | "OKP") {
                if kty.is_empty() {
                    return Err(Error::jwk(format!("key #{i}: missing \"kty\"")));
                }
                continue;
            }
            let jwk = Jwk::from_value(k.clone())
                .map_err(|e| Error::jwk(format!("key #{i}: {}", strip_prefix(&e))))?;
            out.push(jwk);
        }
        JwkSet::new(out)
    }

    /// Serializes to compact JSON.
    pub fn to_json(&self) -> String {
        // Invariant: serializing strings and JSON values cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Serializes to indented JSON.
    pub fn to_json_pretty(&self) -> String {
        // Invariant: as above.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

fn strip_prefix(e: &Error) -> String {
    match e {
        Error::Jwk(m) => m.clone(),
        other => other.to_string(),
    }
}

/// Parses JSON, refusing objects with a repeated member name (RFC 7515 §5.2 lets a parser reject
/// them, and accepting "last wins" is how claim-confusion attacks start).
pub fn parse_json_no_duplicates(text: &str) -> Result<serde_json::Value> {
    use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
    use serde_json::Value;

    struct Strict;
    impl<'de> DeserializeSeed<'de> for Strict {
        type Value = Value;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(StrictVisitor)
        }
    }
    struct StrictVisitor;
    impl<'de> Visitor<'de> for StrictVisitor {
        type Value = Value;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut v = Vec::new();
            while let Some(x) = seq.next_element_seed(Strict)? {
                v.push(x);
            }
            Ok(Value::Array(v))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut m = serde_json::Map::new();
            while let Some(k) = map.next_key::<String>()? {
                if m.contains_key(&k) {
                    return Err(serde::de::Error::custom(format!(
                        "duplicate member \"{k}\""
                    )));
                }
                let v = map.next_value_seed(Strict)?;
                m.insert(k, v);
            }
            Ok(Value::Object(m))
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let v = Strict
        .deserialize(&mut de)
        .map_err(|e| Error::jwk(format!("not valid JSON: {e}")))?;
    de.end()
        .map_err(|e| Error::jwk(format!("not valid JSON: {e}")))?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_rsa_jwk_pins_alg_only_when_asked() {
        let mut n = vec![0xc5u8; 256];
        n[255] = 0x01;
        let rsa = PublicKey::rsa(&n, &[1, 0, 1]).unwrap();
        let free = Jwk::for_publication(&rsa, None).unwrap();
        assert_eq!(
            free.alg, None,
            "an RSA key signs RS* and PS*: no alg unless asked"
        );
        assert_eq!(free.use_.as_deref(), Some("sig"));
        assert_eq!(free.kid.as_deref(), Some(thumbprint(&rsa).as_str()));
        for a in [Algorithm::RS256, Algorithm::PS256] {
            let pinned = Jwk::for_publication(&rsa, Some(a)).unwrap();
            assert_eq!(pinned.alg.as_deref(), Some(a.name()));
        }
        assert!(Jwk::for_publication(&rsa, Some(Algorithm::ES256)).is_err());

        let ec = PublicKey::ec(Curve::P384, &[1; 48], &[2; 48]).unwrap();
        assert_eq!(
            Jwk::for_publication(&ec, None).unwrap().alg.as_deref(),
            Some("ES384"),
            "the curve fixes an EC key's algorithm"
        );
        assert!(Jwk::for_publication(&ec, Some(Algorithm::RS256)).is_err());
        let ed = PublicKey::Ed25519([7; 32]);
        assert_eq!(published_alg(&ed, None).unwrap(), Some(Algorithm::EdDSA));
    }

    #[test]
    fn ec_jwk_round_trip_and_padding() {
        let mut x = vec![0u8; 32];
        x[31] = 9;
        let key = PublicKey::ec(Curve::P256, &x, &[3; 32]).unwrap();
        let jwk = Jwk::for_signing(&key, Algorithm::ES256);
        // Fixed-length coordinates: a leading zero byte is kept.
        assert_eq!(
            b64::decode("x", jwk.x.as_deref().unwrap()).unwrap().len(),
            32
        );
        let parsed = Jwk::from_json(&jwk.to_json()).unwrap();
        assert_eq!(parsed.to_public_key().unwrap(), key);
        assert_eq!(parsed.kid.as_deref(), Some(thumbprint(&key).as_str()));
        assert_eq!(parsed.use_.as_deref(), Some("sig"));
    }

    #[test]
    fn bad_jwks_are_refused_specifically() {
        let x = b64::encode([1u8; 32]);
        let short = b64::encode([1u8; 31]);
        let cases = [
            (
                format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}"}}"#),
                "requires member \"y\"",
            ),
            (
                format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{short}"}}"#),
                "must be 32 bytes, got 31",
            ),
            (
                format!(r#"{{"kty":"EC","crv":"P-192","x":"{x}","y":"{x}"}}"#),
                "unsupported EC curve",
            ),
            (
                format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{x}","d":"{x}"}}"#),
                "private key material",
            ),
            (
                format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}=","y":"{x}"}}"#),
                "base64url",
            ),
            (
                format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","x":"{x}","y":"{x}"}}"#),
                "duplicate member",
            ),
            (
                format!(r#"{{"kty":"EC","crv":"P-256","x":"{x}","y":"{x}","alg":"RS256"}}"#),
                "cannot be used",
            ),
            (
                r#"{"kty":"oct","k":"AAAA"}"#.to_string(),
                "private key material",
            ),
            (r#"{"kty":"oct"}"#.to_string(), "symmetric"),
            (
                r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#.to_string(),
                "at least 2048",
            ),
            (r#"[1]"#.to_string(), "JSON object"),
            (r#"{"kty":"EC""#.to_string(), "not valid JSON"),
        ];
        for (text, want) in cases {
            let e = Jwk::from_json(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e} (wanted {want:?})");
        }
    }

    #[test]
    fn jwks_refuses_duplicate_kids_and_skips_unknown_kty() {
        let k = Jwk::from_public_key(&PublicKey::ed25519(&[5; 32]).unwrap()).with_kid("a");
        let dup = format!(r#"{{"keys":[{},{}]}}"#, k.to_json(), k.to_json());
        assert!(matches!(JwkSet::from_json(&dup), Err(Error::DuplicateKid(k)) if k == "a"));
        let mixed = format!(r#"{{"keys":[{{"kty":"PQC","x":"1"}},{}]}}"#, k.to_json());
        let set = JwkSet::from_json(&mixed).unwrap();
        assert_eq!(set.keys().len(), 1);
        assert!(set.find("a").is_some());
        assert!(JwkSet::new(vec![k.clone(), k]).is_err());
    }
}
