//! [`AssertionVerifier`]: RFC 7523 §3 client assertions (`private_key_jwt`), verified the way
//! `standards.md` asks, and stricter than the servers users meet today (no year-long `exp`, no
//! `iat` in the future, no token-endpoint audience unless configured).

use std::fmt;
use std::sync::Arc;

use pkjwt_core::{Clock, SystemClock};
use serde_json::{Map, Value};

use crate::check::{self, HeaderRules, Mode, Run, TimeRules};
use crate::keys::{KeySet, KeySource};
use crate::replay::{MemoryReplayStore, ReplayStore, replay_key};
use crate::{PolicyError, Rejection, Report, VerifyPolicy};

/// A client assertion that passed every check.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct VerifiedAssertion {
    /// The authenticated client (`iss` = `sub`).
    pub client_id: String,
    /// The `kid` of the key that verified the signature, if the header named one.
    pub kid: Option<String>,
    /// The algorithm.
    pub alg: pkjwt_core::Algorithm,
    /// The `jti`, now recorded as used.
    pub jti: String,
    /// `exp`.
    pub exp: i64,
    /// The full header.
    pub header: Map<String, Value>,
    /// The full claims set.
    pub claims: Map<String, Value>,
}

/// Verifies client assertions addressed to one authorization server.
///
/// ```no_run
/// # async fn demo(jwks_json: &str, jwt: &str) -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use pkjwt_verify::{AssertionVerifier, KeySet, VerifyPolicy};
/// let verifier = AssertionVerifier::new("https://as.example.com", VerifyPolicy::default())?;
/// let keys = Arc::new(KeySet::from_json(jwks_json)?); // the client's registered JWKS
/// let ok = verifier.verify(jwt, "my-client", &keys).await?;
/// println!("authenticated {} with key {:?}", ok.client_id, ok.kid);
/// # Ok(()) }
/// ```
pub struct AssertionVerifier {
    audience: String,
    policy: VerifyPolicy,
    replay: Arc<dyn ReplayStore>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for AssertionVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertionVerifier")
            .field("audience", &self.audience)
            .field("policy", &self.policy)
            .field("replay", &self.replay)
            .finish_non_exhaustive()
    }
}

impl AssertionVerifier {
    /// A verifier for assertions whose `aud` must be `audience` (the server's issuer identifier)
    /// or one of `policy.additional_audiences`. Uses a [`MemoryReplayStore`] and the system
    /// clock until told otherwise.
    pub fn new(audience: impl Into<String>, policy: VerifyPolicy) -> Result<Self, PolicyError> {
        let audience = audience.into();
        if audience.is_empty() {
            return Err(PolicyError("the expected audience is empty".into()));
        }
        policy.validate()?;
        Ok(AssertionVerifier {
            audience,
            policy,
            replay: Arc::new(MemoryReplayStore::default()),
            clock: Arc::new(SystemClock),
        })
    }

    /// Uses `store` to make `jti`s single-use (share one Redis store across replicas).
    pub fn with_replay_store(mut self, store: Arc<dyn ReplayStore>) -> Self {
        self.replay = store;
        self
    }

    /// Uses `clock` as the time source (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &VerifyPolicy {
        &self.policy
    }

    /// The expected audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The client a token request is from, before anything is verified, so that the server can
    /// look up that client's keys: the assertion's `sub`, which must equal the form's
    /// `client_id` when the request sent one (RFC 7523 §3). [`verify`](Self::verify) then
    /// checks everything, including `iss` = `sub` = this client id.
    ///
    /// Nothing is trusted yet: use the result only to choose which keys to verify with.
    pub fn claimed_client_id(
        &self,
        jwt: &str,
        form_client_id: Option<&str>,
    ) -> Result<String, Rejection> {
        let mut run = Run::new(Mode::Verify);
        let Some(jws) = check::parse(&mut run, jwt, self.policy.max_token_bytes) else {
            return Err(run.first_rejection());
        };
        let Ok(Some(sub)) = check::string_claim(&mut run, &jws.claims, "sub") else {
            return Err(run.first_rejection());
        };
        match form_client_id {
            Some(form) if form != sub => Err(Rejection::ClientIdMismatch {
                form: form.into(),
                sub: sub.into(),
            }),
            _ => Ok(sub.to_string()),
        }
    }

    /// Verifies `jwt` as a client assertion of `client_id`, whose keys come from `keys`, and
    /// records its `jti`. Returns the first failed check otherwise.
    ///
    /// The `jti` is recorded only once everything else passed, so a forged or malformed token
    /// cannot use up a legitimate client's `jti`.
    pub async fn verify(
        &self,
        jwt: &str,
        client_id: &str,
        keys: &dyn KeySource,
    ) -> Result<VerifiedAssertion, Rejection> {
        let mut run = Run::new(Mode::Verify);
        let Some(jws) = check::parse(&mut run, jwt, self.policy.max_token_bytes) else {
            return Err(run.first_rejection());
        };
        let Ok((alg, kid)) = check::check_header(&mut run, &jws.header, &self.header_rules())
        else {
            return Err(run.first_rejection());
        };
        let set = keys.key_set(kid.as_deref()).await?;
        let now = self.clock.now();
        let claims_ok = check::check_signature(&mut run, &jws, alg, kid.as_deref(), &set)
            .and_then(|()| self.check_claims(&mut run, &jws.claims, client_id, now));
        let Ok((jti, exp)) = claims_ok else {
            return Err(run.first_rejection());
        };
        let (Some(alg), Some(jti), Some(exp)) = (alg, jti, exp) else {
            // Unreachable in verify mode: each None came with a recorded failure.
            return Err(run.first_rejection());
        };
        let expires_at =
            exp.saturating_add(i64::try_from(self.policy.expiry_leeway_secs).unwrap_or(0));
        match self
            .replay
            .insert_if_absent(&replay_key(client_id, jti), expires_at, now)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return Err(Rejection::Replayed {
                    jti: jti.into(),
                    client_id: client_id.into(),
                });
            }
            Err(e) => return Err(Rejection::ReplayStoreUnavailable { reason: e.0 }),
        }
        let jti = jti.to_string();
        Ok(VerifiedAssertion {
            client_id: client_id.into(),
            kid,
            alg,
            jti,
            exp,
            claims: jws.claims,
            header: jws.header,
        })
    }

    /// Explains, check by check, whether `jwt` would be accepted from `client_id` with `keys`.
    /// A dry run: the `jti` is not recorded, and the replay store is not consulted.
    pub fn explain(&self, jwt: &str, client_id: &str, keys: &KeySet) -> Report {
        let mut run = Run::new(Mode::Explain);
        if let Some(jws) = check::parse(&mut run, jwt, self.policy.max_token_bytes) {
            // In explain mode steps never stop early; the results are in the report.
            if let Ok((alg, kid)) = check::check_header(&mut run, &jws.header, &self.header_rules())
            {
                let _ = check::check_signature(&mut run, &jws, alg, kid.as_deref(), keys);
            }
            let now = self.clock.now();
            if let Ok((Some(_), _)) = self.check_claims(&mut run, &jws.claims, client_id, now)
                && !run.failed()
            {
                run.skip("replay", "jti not recorded: explain is a dry run");
            }
        }
        check::into_report(run)
    }

    fn header_rules(&self) -> HeaderRules<'_> {
        HeaderRules {
            algorithms: &self.policy.algorithms,
            typ: &self.policy.typ,
            understood_crit: &self.policy.understood_crit,
            require_kid: self.policy.require_kid,
        }
    }

    fn check_claims<'c>(
        &self,
        run: &mut Run,
        claims: &'c Map<String, Value>,
        client_id: &str,
        now: i64,
    ) -> check::Step<(Option<&'c str>, Option<i64>)> {
        let p = &self.policy;
        if let Some(iss) = check::string_claim(run, claims, "iss")? {
            if iss == client_id {
                run.pass("iss", format!("{iss:?} = client_id"));
            } else {
                run.fail(
                    "iss",
                    Rejection::IssuerMismatch {
                        found: iss.into(),
                        expected: client_id.into(),
                    },
                )?;
            }
        }
        if let Some(sub) = check::string_claim(run, claims, "sub")? {
            if sub == client_id {
                run.pass("sub", format!("{sub:?} = client_id"));
            } else {
                run.fail(
                    "sub",
                    Rejection::SubjectMismatch {
                        found: sub.into(),
                        expected: client_id.into(),
                    },
                )?;
            }
        }
        let mut accepted: Vec<&str> = vec![self.audience.as_str()];
        accepted.extend(p.additional_audiences.iter().map(String::as_str));
        check::check_audience(run, claims, &accepted, p.allow_audience_array)?;
        let exp = check::check_times(
            run,
            claims,
            &TimeRules {
                now,
                max_lifetime: p.max_lifetime_secs,
                max_future: p.max_future_secs,
                leeway: p.expiry_leeway_secs,
                require_iat: p.require_iat,
                max_age: None,
            },
        )?;
        let jti = check::check_jti(run, claims, p.max_jti_bytes)?;
        if let Some(j) = jti {
            run.pass("jti", format!("{j:?} present"));
        }
        Ok((jti, exp))
    }
}

/// Explains, claim by claim, whether `jwt` would be accepted as a client assertion of
/// `client_id` addressed to `audience`, with the client's `keys` and `policy`: what
/// `pkjwt verify` prints. A dry run (no replay store). An invalid policy or key set is reported
/// as a failed check, not a panic.
pub fn explain(
    jwt: &str,
    keys: &pkjwt_core::JwkSet,
    client_id: &str,
    audience: &str,
    policy: &VerifyPolicy,
) -> Report {
    let verifier = match AssertionVerifier::new(audience, policy.clone()) {
        Ok(v) => v,
        Err(e) => {
            return setup_failure("policy", Rejection::InvalidPolicy { reason: e.0 });
        }
    };
    let set = match KeySet::from_jwks(keys) {
        Ok(s) => s,
        Err(e) => {
            return setup_failure(
                "keys",
                Rejection::KeySetUnavailable {
                    reason: e.to_string(),
                },
            );
        }
    };
    verifier.explain(jwt, client_id, &set)
}

fn setup_failure(name: &'static str, r: Rejection) -> Report {
    let mut run = Run::new(Mode::Explain);
    let _ = run.fail(name, r);
    check::into_report(run)
}
