//! The checking engine shared by client-assertion verification, access-token validation and
//! `explain`: one code path, so that what `pkjwt verify` explains is exactly what a server does.
//!
//! A [`Run`] records every check. In [`Mode::Verify`] it stops at the first failure (nothing is
//! decoded or compared after a refusal); in [`Mode::Explain`] it carries on wherever a later
//! check still means something, so the report shows every problem at once.

use pkjwt_core::{Algorithm, Family, b64, ecdsa_der_to_fixed, jwk::parse_json_no_duplicates};
use serde_json::{Map, Value};

use crate::keys::KeySet;
use crate::policy::{TypPolicy, typ_eq};
use crate::rejection::{Part, Rejection};
use crate::report::{Check, Outcome, Report};

/// Header members registered by RFC 7515/7516/7518 that `crit` must not list (RFC 7515
/// §4.1.11).
const REGISTERED_HEADERS: [&str; 20] = [
    "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit", "enc",
    "zip", "epk", "apu", "apv", "iv", "tag", "p2s", "p2c",
];

/// Header members that would make the verifier take a key from the token itself.
const FORBIDDEN_HEADERS: [&str; 3] = ["jwk", "jku", "x5u"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Verify,
    Explain,
}

/// Returned through `?` when a [`Mode::Verify`] run stops at its first failure.
#[derive(Debug)]
pub(crate) struct Stop;

pub(crate) type Step<T = ()> = Result<T, Stop>;

pub(crate) struct Run {
    pub(crate) mode: Mode,
    pub(crate) report: Report,
}

impl Run {
    pub(crate) fn new(mode: Mode) -> Self {
        Run {
            mode,
            report: Report::default(),
        }
    }

    pub(crate) fn pass(&mut self, name: &'static str, detail: impl Into<String>) {
        self.report.checks.push(Check {
            name,
            outcome: Outcome::Pass(detail.into()),
        });
    }

    /// Records a failure; stops a verify run.
    pub(crate) fn fail(&mut self, name: &'static str, r: Rejection) -> Step {
        self.report.checks.push(Check {
            name,
            outcome: Outcome::Fail(r),
        });
        match self.mode {
            Mode::Verify => Err(Stop),
            Mode::Explain => Ok(()),
        }
    }

    pub(crate) fn skip(&mut self, name: &'static str, why: impl Into<String>) {
        self.report.checks.push(Check {
            name,
            outcome: Outcome::Skipped(why.into()),
        });
    }

    pub(crate) fn failed(&self) -> bool {
        self.report.rejection().is_some()
    }

    pub(crate) fn first_rejection(&self) -> Rejection {
        self.report
            .rejection()
            .cloned()
            .unwrap_or(Rejection::NotCompactJws {
                // Unreachable: only called after a failure was recorded.
                segments: 0,
            })
    }
}

/// A structurally valid compact JWS.
pub(crate) struct Jws<'a> {
    pub(crate) signing_input: &'a str,
    pub(crate) header: Map<String, Value>,
    pub(crate) claims: Map<String, Value>,
    pub(crate) signature: Vec<u8>,
}

fn decode_object(part: Part, seg: &str) -> Result<Map<String, Value>, Rejection> {
    let bytes = b64::decode(&part.to_string(), seg).map_err(|e| Rejection::NonCanonicalBase64 {
        part,
        reason: strip_core_prefix(&e),
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| Rejection::InvalidJson {
        part,
        reason: format!("not UTF-8 ({e})"),
    })?;
    let value = parse_json_no_duplicates(text).map_err(|e| {
        let msg = strip_core_prefix(&e);
        match msg
            .split_once("duplicate member \"")
            .and_then(|(_, rest)| rest.split_once('"'))
        {
            Some((member, _)) => Rejection::DuplicateMember {
                part,
                member: member.to_string(),
            },
            None => Rejection::InvalidJson { part, reason: msg },
        }
    })?;
    match value {
        Value::Object(m) => Ok(m),
        other => Err(Rejection::InvalidJson {
            part,
            reason: format!("found {}", json_type(&other)),
        }),
    }
}

fn strip_core_prefix(e: &pkjwt_core::Error) -> String {
    match e {
        pkjwt_core::Error::Jwk(m) => m.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn json_type(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => format!("the array {v}"),
        Value::Object(_) => "an object".into(),
    }
}

/// Size, segments, base64url and JSON. Any failure here is fatal in both modes: nothing after
/// it can be judged.
pub(crate) fn parse<'a>(run: &mut Run, jwt: &'a str, max_bytes: usize) -> Option<Jws<'a>> {
    let fatal = |run: &mut Run, r: Rejection| {
        let _ = run.fail("format", r);
        None
    };
    if jwt.len() > max_bytes {
        return fatal(
            run,
            Rejection::TooLarge {
                len: jwt.len(),
                max: max_bytes,
            },
        );
    }
    let segments = jwt.split('.').count();
    let mut it = jwt.splitn(3, '.');
    let (Some(h), Some(p), Some(s)) = (it.next(), it.next(), it.next()) else {
        return fatal(run, Rejection::NotCompactJws { segments });
    };
    if segments != 3 {
        return fatal(run, Rejection::NotCompactJws { segments });
    }
    let header = match decode_object(Part::Header, h) {
        Ok(m) => m,
        Err(r) => return fatal(run, r),
    };
    // Only a report that will be shown needs its own copies (saves two map clones per verify).
    if run.mode == Mode::Explain {
        run.report.header = Some(header.clone());
    }
    let claims = match decode_object(Part::Payload, p) {
        Ok(m) => m,
        Err(r) => return fatal(run, r),
    };
    if run.mode == Mode::Explain {
        run.report.claims = Some(claims.clone());
    }
    let signature = match b64::decode("signature", s) {
        Ok(b) => b,
        Err(e) => {
            return fatal(
                run,
                Rejection::NonCanonicalBase64 {
                    part: Part::Signature,
                    reason: strip_core_prefix(&e),
                },
            );
        }
    };
    run.pass(
        "format",
        format!(
            "compact JWS, {} bytes, canonical base64url, no duplicate JSON members",
            jwt.len()
        ),
    );
    Some(Jws {
        // h and p are the first two '.'-separated pieces of jwt, so this is a char boundary.
        signing_input: jwt.get(..h.len() + 1 + p.len()).unwrap_or(jwt),
        header,
        claims,
        signature,
    })
}

/// What the header checks need from a policy.
pub(crate) struct HeaderRules<'a> {
    pub(crate) algorithms: &'a [Algorithm],
    pub(crate) typ: &'a TypPolicy,
    pub(crate) understood_crit: &'a [String],
    pub(crate) require_kid: bool,
}

/// Header checks: `alg`, `typ`, `crit`, key-carrying headers, `kid` type. Returns the algorithm
/// (if acceptable) and the kid.
pub(crate) fn check_header(
    run: &mut Run,
    header: &Map<String, Value>,
    rules: &HeaderRules<'_>,
) -> Step<(Option<Algorithm>, Option<String>)> {
    let alg = check_alg(run, header, rules.algorithms)?;

    match (rules.typ, header.get("typ")) {
        (TypPolicy::Any, Some(Value::String(t))) => {
            run.pass("typ", format!("\"{t}\" (any typ accepted)"))
        }
        (TypPolicy::Any, None) => run.pass("typ", "absent (any typ accepted)"),
        (_, Some(v)) if !v.is_string() => run.fail(
            "typ",
            Rejection::HeaderType {
                member: "typ".into(),
                expected: "a string",
                found: json_type(v),
            },
        )?,
        (TypPolicy::Required(want), None) => run.fail(
            "typ",
            Rejection::MissingTyp {
                expected: want.clone(),
            },
        )?,
        (TypPolicy::Optional(_), None) => run.pass("typ", "absent (allowed)"),
        (policy, Some(v)) => {
            let t = v.as_str().unwrap_or_default();
            let ok = match policy {
                TypPolicy::Required(want) => typ_eq(t, want),
                TypPolicy::Optional(list) => list.iter().any(|w| typ_eq(t, w)),
                TypPolicy::Any => true,
            };
            if ok {
                run.pass("typ", format!("\"{t}\""));
            } else {
                run.fail(
                    "typ",
                    Rejection::WrongTyp {
                        found: t.to_string(),
                        expected: policy.describe(),
                    },
                )?;
            }
        }
    }

    match header.get("crit") {
        None => run.pass("crit", "absent"),
        Some(v) => match check_crit(header, v, rules.understood_crit) {
            Ok(names) => run.pass("crit", format!("{names:?} understood")),
            Err(r) => run.fail("crit", r)?,
        },
    }

    let forbidden: Vec<&str> = FORBIDDEN_HEADERS
        .iter()
        .copied()
        .filter(|m| header.contains_key(*m))
        .collect();
    if let Some(m) = forbidden.first() {
        run.fail(
            "key headers",
            Rejection::ForbiddenHeader {
                member: (*m).to_string(),
            },
        )?;
    }

    let kid = match header.get("kid") {
        None if rules.require_kid => {
            run.fail("kid", Rejection::MissingKid)?;
            None
        }
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(v) => {
            run.fail(
                "kid",
                Rejection::HeaderType {
                    member: "kid".into(),
                    expected: "a string",
                    found: json_type(v),
                },
            )?;
            None
        }
    };
    Ok((alg, kid))
}

fn check_alg(
    run: &mut Run,
    header: &Map<String, Value>,
    allowed: &[Algorithm],
) -> Step<Option<Algorithm>> {
    let name = match header.get("alg") {
        None => {
            run.fail("alg", Rejection::MissingAlg)?;
            return Ok(None);
        }
        Some(Value::String(s)) => s.as_str(),
        Some(v) => {
            run.fail(
                "alg",
                Rejection::HeaderType {
                    member: "alg".into(),
                    expected: "a string",
                    found: json_type(v),
                },
            )?;
            return Ok(None);
        }
    };
    let rejection = if name.eq_ignore_ascii_case("none") {
        Rejection::AlgNone { alg: name.into() }
    } else if name.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("HS")) {
        Rejection::MacAlgorithm { alg: name.into() }
    } else {
        match name.parse::<Algorithm>() {
            // JOSE names are case-sensitive; core's parser accepts only exact names (and the
            // fully-specified `Ed25519`, which is EdDSA with Ed25519).
            Ok(a) if allowed.contains(&a) => {
                run.pass("alg", format!("\"{name}\" is allowed"));
                return Ok(Some(a));
            }
            Ok(a) => Rejection::AlgorithmNotAllowed {
                alg: a.name().into(),
                allowed: allowed
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            Err(_) => Rejection::UnknownAlgorithm { alg: name.into() },
        }
    };
    run.fail("alg", rejection)?;
    Ok(None)
}

fn check_crit(
    header: &Map<String, Value>,
    v: &Value,
    understood: &[String],
) -> Result<Vec<String>, Rejection> {
    let invalid = |reason: String| Rejection::InvalidCrit { reason };
    let list = v.as_array().ok_or_else(|| {
        invalid(format!(
            "must be an array of strings, found {}",
            json_type(v)
        ))
    })?;
    if list.is_empty() {
        return Err(invalid(
            "must not be an empty array (RFC 7515 §4.1.11)".into(),
        ));
    }
    let mut names = Vec::with_capacity(list.len());
    for item in list {
        let n = item
            .as_str()
            .ok_or_else(|| invalid(format!("lists {}, not a string", json_type(item))))?;
        if REGISTERED_HEADERS.contains(&n) {
            return Err(invalid(format!(
                "lists \"{n}\", a header defined by RFC 7515/7518, which crit must not name"
            )));
        }
        if !header.contains_key(n) {
            return Err(invalid(format!(
                "lists \"{n}\", which is not present in the header"
            )));
        }
        if names.iter().any(|x: &String| x == n) {
            return Err(invalid(format!("lists \"{n}\" twice")));
        }
        names.push(n.to_string());
    }
    let unknown: Vec<String> = names
        .iter()
        .filter(|n| !understood.contains(n))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(Rejection::CritNotUnderstood { names: unknown });
    }
    Ok(names)
}

/// Selects the key and verifies the signature.
pub(crate) fn check_signature(
    run: &mut Run,
    jws: &Jws<'_>,
    alg: Option<Algorithm>,
    kid: Option<&str>,
    keys: &KeySet,
) -> Step {
    let Some(alg) = alg else {
        run.skip("signature", "not checked: no acceptable alg");
        return Ok(());
    };
    let candidates: Vec<&crate::keys::VerifyingKey> = match kid {
        Some(kid) => match keys.find(kid) {
            None => {
                return run.fail(
                    "kid",
                    Rejection::UnknownKid {
                        kid: kid.into(),
                        known: keys.kids_text(),
                    },
                );
            }
            Some(k) => {
                if let Some(reason) = k.unfit_reason(alg) {
                    return run.fail(
                        "kid",
                        Rejection::AlgorithmKeyMismatch {
                            alg: alg.name().into(),
                            kid: k.label(),
                            key: k.public_key().describe(),
                            reason,
                        },
                    );
                }
                run.pass(
                    "kid",
                    format!("\"{kid}\" found: {}", k.public_key().describe()),
                );
                vec![k]
            }
        },
        None => {
            let c: Vec<_> = keys
                .keys()
                .iter()
                .filter(|k| k.unfit_reason(alg).is_none())
                .collect();
            if c.is_empty() {
                return run.fail(
                    "kid",
                    Rejection::NoUsableKey {
                        alg: alg.name().into(),
                        keys: keys.describe(),
                    },
                );
            }
            run.pass(
                "kid",
                format!("absent; trying the {} key(s) that fit {alg}", c.len()),
            );
            c
        }
    };

    let len = jws.signature.len();
    let mut length_error = None;
    let mut tried = 0usize;
    for k in &candidates {
        let expected = k.signature_len(alg);
        if len != expected {
            length_error.get_or_insert_with(|| {
                signature_length_rejection(alg, k.label(), len, expected, &jws.signature)
            });
            continue;
        }
        tried += 1;
        let Some(parsed) = k.parsed(alg) else {
            continue;
        };
        if parsed
            .verify_sig(jws.signing_input.as_bytes(), &jws.signature)
            .is_ok()
        {
            run.pass(
                "signature",
                format!("{alg} signature verifies with key {}", k.label()),
            );
            return Ok(());
        }
    }
    let r = match (tried, length_error) {
        (0, Some(e)) => e,
        _ => Rejection::BadSignature {
            alg: alg.name().into(),
            kid: if candidates.len() == 1 {
                candidates[0].label()
            } else {
                format!("(any of {} keys)", candidates.len())
            },
        },
    };
    run.fail("signature", r)
}

fn signature_length_rejection(
    alg: Algorithm,
    kid: String,
    len: usize,
    expected: usize,
    sig: &[u8],
) -> Rejection {
    if let Family::Ecdsa(curve) = alg.family()
        && ecdsa_der_to_fixed(sig, curve).is_ok()
    {
        return Rejection::DerSignature {
            alg: alg.name().into(),
            len,
            expected,
        };
    }
    Rejection::SignatureLength {
        alg: alg.name().into(),
        kid,
        len,
        expected,
    }
}

/// Reads a NumericDate claim (RFC 7519 §2): a JSON number, fractional parts floored.
pub(crate) fn numeric_date(
    run: &mut Run,
    claims: &Map<String, Value>,
    claim: &'static str,
    required: bool,
) -> Step<Option<i64>> {
    match claims.get(claim) {
        None if required => {
            run.fail(claim, Rejection::MissingClaim { claim })?;
            Ok(None)
        }
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                return Ok(Some(i));
            }
            match n.as_f64() {
                Some(f) if f.is_finite() && f.abs() < 1e15 => Ok(Some(f.floor() as i64)),
                _ => {
                    run.fail(
                        claim,
                        Rejection::ClaimType {
                            claim,
                            expected: "a NumericDate (seconds since 1970)",
                            found: format!("the number {n}"),
                        },
                    )?;
                    Ok(None)
                }
            }
        }
        Some(v) => {
            run.fail(
                claim,
                Rejection::ClaimType {
                    claim,
                    expected: "a NumericDate (seconds since 1970)",
                    found: json_type(v),
                },
            )?;
            Ok(None)
        }
    }
}

/// Reads a string claim.
pub(crate) fn string_claim<'c>(
    run: &mut Run,
    claims: &'c Map<String, Value>,
    claim: &'static str,
) -> Step<Option<&'c str>> {
    match claims.get(claim) {
        None => {
            run.fail(claim, Rejection::MissingClaim { claim })?;
            Ok(None)
        }
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => {
            run.fail(
                claim,
                Rejection::ClaimType {
                    claim,
                    expected: "a string",
                    found: json_type(v),
                },
            )?;
            Ok(None)
        }
    }
}

/// Time rules shared by assertions and access tokens.
pub(crate) struct TimeRules {
    pub(crate) now: i64,
    pub(crate) max_lifetime: u64,
    pub(crate) max_future: u64,
    pub(crate) leeway: u64,
    pub(crate) require_iat: bool,
    pub(crate) max_age: Option<u64>,
}

/// `exp`, `nbf`, `iat` and the lifetime. Returns `exp` when present.
pub(crate) fn check_times(
    run: &mut Run,
    claims: &Map<String, Value>,
    t: &TimeRules,
) -> Step<Option<i64>> {
    let now = t.now;
    let lifetime_cap = i64::try_from(t.max_lifetime).unwrap_or(i64::MAX);
    let future = i64::try_from(t.max_future).unwrap_or(i64::MAX);
    let leeway = i64::try_from(t.leeway).unwrap_or(i64::MAX);

    let exp = numeric_date(run, claims, "exp", true)?;
    if let Some(exp) = exp {
        let ahead = exp.saturating_sub(now);
        if ahead < -leeway {
            run.fail(
                "exp",
                Rejection::Expired {
                    exp,
                    now,
                    ago: ahead.saturating_neg(),
                    leeway: t.leeway,
                },
            )?;
        } else if ahead > lifetime_cap.saturating_add(future) {
            run.fail(
                "exp",
                Rejection::ExpiresTooFarAhead {
                    exp,
                    now,
                    ahead,
                    max: t.max_lifetime.saturating_add(t.max_future),
                },
            )?;
        } else {
            run.pass("exp", format!("{exp} (in {ahead} s; now {now})"));
        }
    }

    match numeric_date(run, claims, "nbf", false)? {
        None => {
            if !claims.contains_key("nbf") {
                run.pass("nbf", "absent (optional)");
            }
        }
        Some(nbf) => {
            let ahead = nbf.saturating_sub(now);
            if ahead > future {
                run.fail(
                    "nbf",
                    Rejection::NotYetValid {
                        nbf,
                        now,
                        ahead,
                        max: t.max_future,
                    },
                )?;
            } else {
                run.pass(
                    "nbf",
                    format!("{nbf} ({} s from now; tolerance {future} s)", ahead),
                );
            }
        }
    }

    match numeric_date(run, claims, "iat", t.require_iat)? {
        None => {
            if !claims.contains_key("iat") && !t.require_iat {
                run.pass("iat", "absent (optional)");
            }
        }
        Some(iat) => {
            let ahead = iat.saturating_sub(now);
            if ahead > future {
                run.fail(
                    "iat",
                    Rejection::IssuedInFuture {
                        iat,
                        now,
                        ahead,
                        max: t.max_future,
                    },
                )?;
            } else if let Some(max_age) = t
                .max_age
                .filter(|m| ahead.saturating_neg() > i64::try_from(*m).unwrap_or(i64::MAX))
            {
                run.fail(
                    "iat",
                    Rejection::IssuedTooLongAgo {
                        iat,
                        age: ahead.saturating_neg(),
                        max: max_age,
                    },
                )?;
            } else {
                run.pass("iat", format!("{iat} ({} s ago)", ahead.saturating_neg()));
            }
            if let Some(exp) = exp {
                let lifetime = exp.saturating_sub(iat);
                if lifetime <= 0 || lifetime > lifetime_cap {
                    run.fail(
                        "lifetime",
                        Rejection::LifetimeTooLong {
                            exp,
                            iat,
                            lifetime,
                            max: t.max_lifetime,
                        },
                    )?;
                } else {
                    run.pass(
                        "lifetime",
                        format!("exp − iat = {lifetime} s (at most {} s)", t.max_lifetime),
                    );
                }
            }
        }
    }
    Ok(exp)
}

/// `aud` against a set of accepted values.
pub(crate) fn check_audience(
    run: &mut Run,
    claims: &Map<String, Value>,
    accepted: &[&str],
    allow_array: bool,
) -> Step {
    let expected_text = if accepted.len() == 1 {
        format!("{:?}", accepted[0])
    } else {
        format!("one of {accepted:?}")
    };
    match claims.get("aud") {
        None => run.fail("aud", Rejection::MissingClaim { claim: "aud" }),
        Some(Value::String(a)) => {
            if accepted.contains(&a.as_str()) {
                run.pass("aud", format!("{a:?}"));
                Ok(())
            } else {
                run.fail(
                    "aud",
                    Rejection::AudienceMismatch {
                        found: format!("{a:?}"),
                        expected: expected_text,
                    },
                )
            }
        }
        Some(v @ Value::Array(list)) => {
            if !allow_array {
                return run.fail(
                    "aud",
                    Rejection::AudienceArray {
                        found: v.to_string(),
                        expected: accepted.first().copied().unwrap_or_default().to_string(),
                    },
                );
            }
            if let Some(bad) = list.iter().find(|x| !x.is_string()) {
                return run.fail(
                    "aud",
                    Rejection::ClaimType {
                        claim: "aud",
                        expected: "a string or an array of strings",
                        found: format!("an array holding {}", json_type(bad)),
                    },
                );
            }
            if list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| accepted.contains(&a))
            {
                run.pass("aud", format!("{v} contains an accepted audience"));
                Ok(())
            } else {
                run.fail(
                    "aud",
                    Rejection::AudienceMismatch {
                        found: v.to_string(),
                        expected: expected_text,
                    },
                )
            }
        }
        Some(v) => run.fail(
            "aud",
            Rejection::ClaimType {
                claim: "aud",
                expected: "a string",
                found: json_type(v),
            },
        ),
    }
}

/// `jti`: present, a non-empty string of bounded length.
pub(crate) fn check_jti<'c>(
    run: &mut Run,
    claims: &'c Map<String, Value>,
    max_bytes: usize,
) -> Step<Option<&'c str>> {
    let Some(jti) = string_claim(run, claims, "jti")? else {
        return Ok(None);
    };
    if jti.is_empty() {
        run.fail(
            "jti",
            Rejection::InvalidJti {
                reason: "it is empty".into(),
            },
        )?;
        return Ok(None);
    }
    if jti.len() > max_bytes {
        run.fail(
            "jti",
            Rejection::InvalidJti {
                reason: format!(
                    "it is {} bytes; at most {max_bytes} are accepted",
                    jti.len()
                ),
            },
        )?;
        return Ok(None);
    }
    Ok(Some(jti))
}

/// Finishes a run into its report.
pub(crate) fn into_report(run: Run) -> Report {
    run.report
}
