//! The claim-by-claim [`Report`] produced by [`crate::explain`] and
//! [`crate::AssertionVerifier::explain`]: one line per check, ✓ or ✗, with the values.

use std::fmt;

use serde_json::{Map, Value};

use crate::Rejection;

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The check passed; the text says with what values.
    Pass(String),
    /// The check failed.
    Fail(Rejection),
    /// The check could not be made (an earlier failure left nothing to check), or is not made
    /// in this mode (a dry run does not consume the `jti`).
    Skipped(String),
}

/// One check of a token: what was looked at and what came of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// The header member, claim or step (`alg`, `aud`, `signature`, …).
    pub name: &'static str,
    /// What came of it.
    pub outcome: Outcome,
}

impl Check {
    /// True when the check passed.
    pub fn passed(&self) -> bool {
        matches!(self.outcome, Outcome::Pass(_))
    }
}

/// Every check made on a token, in order, with the decoded header and claims when they could be
/// decoded (claims are shown even when the signature failed, marked as unverified by the
/// signature check's own line).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub(crate) checks: Vec<Check>,
    pub(crate) header: Option<Map<String, Value>>,
    pub(crate) claims: Option<Map<String, Value>>,
}

impl Report {
    /// True when every check passed (skipped checks are neither).
    pub fn accepted(&self) -> bool {
        !self.checks.is_empty()
            && self
                .checks
                .iter()
                .all(|c| !matches!(c.outcome, Outcome::Fail(_)))
    }

    /// The first failure, which is what [`crate::AssertionVerifier::verify`] would return.
    pub fn rejection(&self) -> Option<&Rejection> {
        self.checks.iter().find_map(|c| match &c.outcome {
            Outcome::Fail(r) => Some(r),
            _ => None,
        })
    }

    /// Every failure, in order.
    pub fn rejections(&self) -> impl Iterator<Item = &Rejection> {
        self.checks.iter().filter_map(|c| match &c.outcome {
            Outcome::Fail(r) => Some(r),
            _ => None,
        })
    }

    /// The checks, in the order they were made.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// The decoded header, if it could be decoded.
    pub fn header(&self) -> Option<&Map<String, Value>> {
        self.header.as_ref()
    }

    /// The decoded claims, if they could be decoded (not necessarily authentic: see the
    /// `signature` check).
    pub fn claims(&self) -> Option<&Map<String, Value>> {
        self.claims.as_ref()
    }

    /// The report as JSON (for `pkjwt verify --json`): `accepted`, `rejection` (kind and
    /// message of the first failure, or null), `checks` (name, `status` pass/fail/skipped,
    /// `detail`, and `kind` for failures), `header` and `claims`.
    pub fn to_json(&self) -> Value {
        let checks: Vec<Value> = self
            .checks
            .iter()
            .map(|c| match &c.outcome {
                Outcome::Pass(t) => {
                    serde_json::json!({"name": c.name, "status": "pass", "detail": t})
                }
                Outcome::Fail(r) => serde_json::json!({
                    "name": c.name, "status": "fail", "kind": r.kind(), "detail": r.to_string()
                }),
                Outcome::Skipped(t) => {
                    serde_json::json!({"name": c.name, "status": "skipped", "detail": t})
                }
            })
            .collect();
        serde_json::json!({
            "accepted": self.accepted(),
            "rejection": self.rejection().map(|r| serde_json::json!({
                "kind": r.kind(), "subject": r.subject(), "message": r.to_string()
            })),
            "checks": checks,
            "header": self.header,
            "claims": self.claims,
        })
    }
}

impl fmt::Display for Report {
    /// One line per check: `✓ name  detail`, `✗ name  reason`, `- name  why not checked`, then
    /// a verdict line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &self.checks {
            let (mark, text) = match &c.outcome {
                Outcome::Pass(t) => ("✓", t.clone()),
                Outcome::Fail(r) => ("✗", r.to_string()),
                Outcome::Skipped(t) => ("-", t.clone()),
            };
            // The detail quotes the token's own header and claims: one line each, whatever
            // CR/LF or ANSI escapes they carry (issue 12, item 6).
            let text = pkjwt_core::escape_controls(&text);
            writeln!(f, "{mark} {:width$}  {text}", c.name)?;
        }
        match self.rejection() {
            None if self.accepted() => write!(f, "accepted"),
            None => write!(f, "refused: no check was made"),
            Some(r) => write!(
                f,
                "refused ({}): {}",
                r.kind(),
                pkjwt_core::escape_controls(&r.to_string())
            ),
        }
    }
}
