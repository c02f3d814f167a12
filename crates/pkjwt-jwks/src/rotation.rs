//! Key rotation as timestamps in a file: which keys are published and which one signs follow
//! from the current time alone, so the choreography survives restarts (standards.md, "Rotation
//! timed to the servers' caches").

use std::path::Path;

use pkjwt_core::Jwk;
use pkjwt_core::private_file::{
    Exposure, Overwrite, PrivateFileError, read_private_text, write_private,
};
use serde::{Deserialize, Serialize};

use crate::JwksError;

/// Current state-file format.
pub const STATE_VERSION: u32 = 1;
/// oidc-provider keeps a client's JWKS at least this long; shorter pre-publication times
/// make it reject the new kid.
pub const MIN_SERVER_JWKS_CACHE_SECS: u64 = 60;

/// One managed key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KeyEntry {
    /// Where the private key lives (a key URI; never one carrying a PIN value).
    pub uri: String,
    /// The public JWK as published (kid, use, alg included).
    pub jwk: Jwk,
    /// Unix time the key entered the JWKS.
    pub published_at: i64,
    /// Unix time from which it signs.
    pub active_from: i64,
    /// Unix time it leaves the JWKS; set when a successor was scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<i64>,
    /// A name in the key's backend that must point at this key while it signs (an AWS KMS
    /// alias, moved by `pkjwt rotate apply`: the "alias swap"). The key itself is always reached
    /// through `uri`, which names it directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

impl KeyEntry {
    /// A key entry. The JWK must carry a `kid`.
    pub fn new(uri: impl Into<String>, jwk: Jwk, published_at: i64, active_from: i64) -> Self {
        KeyEntry {
            uri: uri.into(),
            jwk,
            published_at,
            active_from,
            retire_at: None,
            alias: None,
        }
    }

    /// The key's `kid`.
    pub fn kid(&self) -> &str {
        self.jwk.kid.as_deref().unwrap_or("")
    }

    /// True when the key is in the JWKS at `now`.
    pub fn is_published(&self, now: i64) -> bool {
        self.published_at <= now && self.retire_at.is_none_or(|r| now < r)
    }

    /// The phase at `now`, for status output.
    pub fn phase(&self, now: i64, signing_kid: Option<&str>) -> Phase {
        if now < self.published_at {
            Phase::Scheduled
        } else if self.retire_at.is_some_and(|r| now >= r) {
            Phase::Retired
        } else if signing_kid == Some(self.kid()) {
            Phase::Signing
        } else if now < self.active_from {
            Phase::PrePublished
        } else {
            Phase::Overlap
        }
    }
}

/// Where a key stands in the choreography.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Phase {
    /// Not yet published.
    Scheduled,
    /// Published, not yet signing (servers' caches are learning it).
    PrePublished,
    /// Published and signing.
    Signing,
    /// Replaced as signer, still published so in-flight assertions verify.
    Overlap,
    /// No longer published.
    Retired,
}

/// The rotation state: every managed key with its instants.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RotationState {
    /// Format version ([`STATE_VERSION`]).
    pub version: u32,
    /// Keys in the order they were added.
    pub keys: Vec<KeyEntry>,
}

/// Timing of one rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RotationTiming {
    /// Seconds the next key is published before it signs. Must exceed every server's JWKS cache
    /// time (oidc-provider: 60 s, or `Cache-Control: max-age` if longer).
    pub prepublish_secs: u64,
    /// Seconds the previous key stays published after the switch (at least the longest
    /// assertion lifetime, so assertions signed just before the switch still verify).
    pub overlap_secs: u64,
}

impl Default for RotationTiming {
    fn default() -> Self {
        RotationTiming {
            prepublish_secs: 2 * 3600,
            overlap_secs: 3600,
        }
    }
}

impl RotationTiming {
    /// A timing of `prepublish_secs` before the switch and `overlap_secs` after it.
    pub fn new(prepublish_secs: u64, overlap_secs: u64) -> Self {
        RotationTiming {
            prepublish_secs,
            overlap_secs,
        }
    }
}

impl RotationState {
    /// An empty state.
    pub fn new() -> Self {
        RotationState {
            version: STATE_VERSION,
            keys: Vec::new(),
        }
    }

    /// Reads a state file. A missing file is an error (use [`RotationState::load_or_new`] to
    /// start one).
    pub fn load(path: &Path) -> Result<Self, JwksError> {
        // The state names key URIs whose `module-path=` gets loaded as a shared library: it is
        // read only when this user (or root) owns it and nobody else can change it.
        let text = read_private_text(path, Exposure::Trusted).map_err(|e| JwksError::State {
            path: path.into(),
            reason: state_file_reason(e),
        })?;
        Self::parse(&text, path)
    }

    /// Reads a state file, or an empty state if there is none yet.
    pub fn load_or_new(path: &Path) -> Result<Self, JwksError> {
        if path.exists() {
            Self::load(path)
        } else {
            Ok(Self::new())
        }
    }

    fn parse(text: &str, path: &Path) -> Result<Self, JwksError> {
        let bad = |reason: String| JwksError::State {
            path: path.into(),
            reason,
        };
        let s: RotationState =
            serde_json::from_str(text).map_err(|e| bad(format!("not a rotation state: {e}")))?;
        if s.version != STATE_VERSION {
            return Err(bad(format!(
                "state version {} is not supported; expected {STATE_VERSION}",
                s.version
            )));
        }
        for (i, k) in s.keys.iter().enumerate() {
            if k.kid().is_empty() {
                return Err(bad(format!("key {} ({}) has no kid", i, k.uri)));
            }
            // The JWKs are served as they are: a hand-edited file must not publish private
            // material or a key no verifier could use.
            k.jwk
                .check_public()
                .map_err(|e| bad(format!("key {} ({}): {e}", k.kid(), k.uri)))?;
            if s.keys[..i].iter().any(|o| o.kid() == k.kid()) {
                return Err(bad(format!("kid {} appears twice", k.kid())));
            }
            if k.active_from < k.published_at {
                return Err(bad(format!(
                    "key {} would sign before it is published",
                    k.kid()
                )));
            }
        }
        Ok(s)
    }

    /// Writes the state atomically, mode 0600: a temporary file with an unpredictable name,
    /// created exclusively, flushed, renamed over the old one, and the directory flushed
    /// (`pkjwt_core::private_file`).
    pub fn save(&self, path: &Path) -> Result<(), JwksError> {
        let err = |reason: String| JwksError::State {
            path: path.into(),
            reason,
        };
        let mut json =
            serde_json::to_string_pretty(self).map_err(|e| err(format!("cannot encode: {e}")))?;
        json.push('\n');
        write_private(path, json.as_bytes(), Overwrite::Replace)
            .map_err(|e| err(state_file_reason(e)))
    }

    /// The keys published at `now`.
    pub fn published(&self, now: i64) -> impl Iterator<Item = &KeyEntry> {
        self.keys.iter().filter(move |k| k.is_published(now))
    }

    /// The key that signs at `now`: of the published keys already active, the one activated
    /// last.
    pub fn signing(&self, now: i64) -> Option<&KeyEntry> {
        self.published(now)
            .filter(|k| k.active_from <= now)
            .max_by_key(|k| k.active_from)
    }

    /// Adds the first key: published and signing at once (nothing can have cached it yet, so
    /// there is nothing to wait for).
    pub fn init(&mut self, uri: &str, jwk: Jwk, now: i64) -> Result<&KeyEntry, JwksError> {
        if self.signing(now).is_some() {
            return Err(JwksError::Rotation(
                "the state already has a signing key; use rotate to add the next one".into(),
            ));
        }
        self.push(KeyEntry::new(uri, jwk, now, now))
    }

    /// The checks [`begin`](Self::begin) makes before it looks at the new key: a key signs
    /// now, and no earlier rotation is still pre-publishing. Call it before creating a key in
    /// a backend, so that a refused rotation leaves no key behind.
    pub fn check_can_begin(&self, now: i64) -> Result<(), JwksError> {
        if self.signing(now).is_none() {
            return Err(JwksError::Rotation(
                "no key signs now: start the state with `init` first".into(),
            ));
        }
        if let Some(p) = self.published(now).find(|k| k.active_from > now) {
            return Err(JwksError::Rotation(format!(
                "a rotation is in progress: key {} starts signing in {} s; rotate again after that",
                p.kid(),
                p.active_from - now
            )));
        }
        Ok(())
    }

    /// Starts a rotation at `now`: `jwk` is published now and signs from
    /// `now + prepublish_secs`; every key published now retires `overlap_secs` after that.
    /// Refuses while an earlier rotation is still pre-publishing, or a kid seen before.
    pub fn begin(
        &mut self,
        uri: &str,
        jwk: Jwk,
        now: i64,
        timing: RotationTiming,
    ) -> Result<&KeyEntry, JwksError> {
        self.check_can_begin(now)?;
        let prepublish = i64::try_from(timing.prepublish_secs).unwrap_or(i64::MAX);
        let overlap = i64::try_from(timing.overlap_secs).unwrap_or(i64::MAX);
        let active_from = now.saturating_add(prepublish);
        let retire_at = active_from.saturating_add(overlap);
        for k in self.keys.iter_mut().filter(|k| k.is_published(now)) {
            k.retire_at = Some(k.retire_at.map_or(retire_at, |r| r.min(retire_at)));
        }
        self.push(KeyEntry::new(uri, jwk, now, active_from))
    }

    /// Forgets keys retired before `now`.
    pub fn prune(&mut self, now: i64) -> usize {
        let before = self.keys.len();
        self.keys.retain(|k| k.retire_at.is_none_or(|r| now < r));
        before - self.keys.len()
    }

    fn push(&mut self, entry: KeyEntry) -> Result<&KeyEntry, JwksError> {
        if entry.kid().is_empty() {
            return Err(JwksError::Rotation("the new key's JWK has no kid".into()));
        }
        // Servers cache kid → key: a kid must never name a second key (Keycloak issue 14263).
        if self.keys.iter().any(|k| k.kid() == entry.kid()) {
            return Err(JwksError::Rotation(format!(
                "kid {} was used before; a rotated key needs a new key (and kid)",
                entry.kid()
            )));
        }
        self.keys.push(entry);
        let last = self.keys.len() - 1;
        Ok(&self.keys[last])
    }
}

/// The error's text without the path, which [`JwksError::State`] shows already.
fn state_file_reason(e: PrivateFileError) -> String {
    match e {
        PrivateFileError::Io { action, source, .. } => format!("cannot {action} it: {source}"),
        PrivateFileError::Insecure { reason, .. } => reason,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn jwk(kid: &str) -> Jwk {
        let mut j = Jwk::from_json(
            r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        )
        .unwrap();
        j.kid = Some(kid.into());
        j
    }

    #[test]
    fn choreography_follows_the_clock() {
        let mut s = RotationState::new();
        s.init("file:a.pem", jwk("a"), 1000).unwrap();
        assert_eq!(s.signing(1000).unwrap().kid(), "a");
        let t = RotationTiming {
            prepublish_secs: 100,
            overlap_secs: 50,
        };
        s.begin("file:b.pem", jwk("b"), 2000, t).unwrap();
        let kids = |now| s.published(now).map(KeyEntry::kid).collect::<Vec<_>>();
        // Pre-publication: both published, a signs.
        assert_eq!(kids(2000), ["a", "b"]);
        assert_eq!(s.signing(2099).unwrap().kid(), "a");
        assert_eq!(s.keys[1].phase(2050, Some("a")), Phase::PrePublished);
        // Switch: b signs, a stays for the overlap.
        assert_eq!(s.signing(2100).unwrap().kid(), "b");
        assert_eq!(kids(2149), ["a", "b"]);
        assert_eq!(s.keys[0].phase(2120, Some("b")), Phase::Overlap);
        // Retired.
        assert_eq!(kids(2150), ["b"]);
        assert_eq!(s.keys[0].phase(2150, Some("b")), Phase::Retired);
        // A second rotation during pre-publication is refused; a reused kid too.
        let mut s2 = s.clone();
        assert!(s2.begin("file:c.pem", jwk("c"), 2050, t).is_err());
        assert!(s2.begin("file:a2.pem", jwk("a"), 3000, t).is_err());
        assert_eq!(s2.prune(3000), 1);
    }

    #[test]
    fn state_survives_a_round_trip_through_the_file() {
        let dir = std::env::temp_dir().join(format!("pkjwt-rot-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let mut s = RotationState::new();
        s.init("file:a.pem", jwk("a"), 10).unwrap();
        s.begin("file:b.pem", jwk("b"), 20, RotationTiming::default())
            .unwrap();
        s.save(&path).unwrap();
        assert_eq!(RotationState::load(&path).unwrap(), s);
        fs::write(&path, r#"{"version":9,"keys":[]}"#).unwrap();
        let e = RotationState::load(&path).unwrap_err().to_string();
        assert!(e.contains("version 9"), "{e}");
        // A hand-edited key is checked like a parsed JWK before it can be served: private
        // material, an unknown curve, an alg the key cannot make.
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        for (extra, want) in [
            (format!(r#","d":"{x}""#), "private key material"),
            (r#","alg":"ES256""#.to_owned(), "ES256"),
        ] {
            let text = format!(
                r#"{{"version":1,"keys":[{{"uri":"file:a.pem","jwk":{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"a"{extra}}},"published_at":0,"active_from":0}}]}}"#
            );
            fs::write(&path, text).unwrap();
            let e = RotationState::load(&path).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("key a"), "{e}");
        }
        let bad_curve = format!(
            r#"{{"version":1,"keys":[{{"uri":"u","jwk":{{"kty":"OKP","crv":"X448","x":"{x}","kid":"k"}},"published_at":0,"active_from":0}}]}}"#
        );
        fs::write(&path, bad_curve).unwrap();
        let e = RotationState::load(&path).unwrap_err().to_string();
        assert!(e.contains("X448"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Issue 12, item 9: a state that another user could have changed is not trusted (its URIs
    /// name PKCS#11 modules to load), and `save` replaces a loose file with a 0600 one.
    #[cfg(unix)]
    #[test]
    fn state_others_can_change_is_refused_and_save_makes_it_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("pkjwt-rot-mode-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        let mut s = RotationState::new();
        s.init("file:a.pem", jwk("a"), 10).unwrap();
        s.save(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        let e = RotationState::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("mode is 0666") && e.contains("state.json"),
            "{e}"
        );
        s.save(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(RotationState::load(&path).unwrap(), s);
        fs::remove_dir_all(&dir).unwrap();
    }
}
