//! What the command prints: results on stdout (a closed pipe is success, not an error), notes
//! on stderr, and the one error line `main` prints — the cause chain, then the flag that fixes
//! it where the library can only name an API field.

use std::io::Write;
use std::process::ExitCode;

use pkjwt::Jwk;

/// Writes `text` and a newline to stdout (a closed pipe surfaces as `BrokenPipe`, which
/// [`report`] treats as success).
pub(crate) fn print(text: &str) -> std::io::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        o.write_all(b"\n")?;
    }
    o.flush()
}

/// Why a published JWK carries no `alg`, for stderr (`None` when it carries one).
pub(crate) fn unpinned_note(jwk: &Jwk) -> Option<String> {
    if jwk.alg.is_some() {
        return None;
    }
    Some(format!(
        "the JWK (kid {}) carries no alg: an RSA key signs RS256 and PS256 alike and the key \
         does not record which one it is for, so verifiers accept either; give --alg RS256 (or \
         PS256) to pin it",
        pkjwt::escape_controls(jwk.kid.as_deref().unwrap_or("none"))
    ))
}

/// Prints a subcommand's error once, as `pkjwt: error: …` with its cause chain on one line
/// (the one chain printer, `pkjwt::display_chain`) and the flag that helps, and returns exit
/// code 1. A closed stdout pipe is not an error: exit 0, nothing printed.
pub(crate) fn report(e: &(dyn std::error::Error + 'static)) -> ExitCode {
    if is_broken_pipe(e) {
        return ExitCode::SUCCESS;
    }
    let mut line = pkjwt::display_chain(e);
    if let Some(hint) = flag_hint(e) {
        line.push_str("; ");
        line.push_str(hint);
    }
    let _ = writeln!(std::io::stderr(), "pkjwt: error: {line}");
    ExitCode::FAILURE
}

/// The command-line flag that fixes an error, where the library's message can only name the API
/// field (libraries do not know about flags). Found by walking the cause chain, so it works
/// behind `file backend`, `client assertion` and the like.
fn flag_hint(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    use pkjwt_client::ClientError;
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(pkjwt::FileError::InsecurePermissions { .. }) = c.downcast_ref() {
            return Some("to accept it here, pass --allow-insecure-key-permissions");
        }
        if let Some(pkjwt::Error::NoCertificateStorage { .. }) = c.downcast_ref() {
            return Some("pass the certificate file with --cert where it is needed");
        }
        if let Some(pkjwt_x509::X509Error::NoStoredMatch { .. }) = c.downcast_ref() {
            return Some("give the key's certificate with --cert FILE");
        }
        if let Some(pkjwt_verify::JwksError::ForbiddenAddress {
            option: "allow_private_addresses",
            ..
        }) = c.downcast_ref()
        {
            return Some("if the JWKS host is on your own network, pass --allow-private-jwks-host");
        }
        if let Some(ce) = c.downcast_ref::<ClientError>() {
            match ce {
                ClientError::ThumbprintRequired {
                    field: "x5t_s256", ..
                } => {
                    return Some(
                        "give the certificate with --cert FILE, or its thumbprint with --x5t-s256",
                    );
                }
                ClientError::ThumbprintRequired { .. } => {
                    return Some("give the certificate with --cert FILE");
                }
                ClientError::Registration { error, .. }
                    if error.status == 401 && error.error == "invalid_token" =>
                {
                    return Some(
                        "give the initial access token with --initial-access-token-source, or \
                         manage a registration with --registration FILE as saved by `pkjwt register`",
                    );
                }
                _ if ce.oauth().is_some_and(|o| o.error == "invalid_client") => {
                    return Some("the aud is chosen by --profile (or --aud-mode)");
                }
                _ => {}
            }
        }
        cur = c.source();
    }
    None
}

fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::BrokenPipe
        {
            return true;
        }
        cur = c.source();
    }
    false
}

/// A Kubernetes `ExecCredential` (client.authentication.k8s.io/v1) carrying `token`, expiring
/// `expires_in` seconds from now (no `expirationTimestamp` when the server gave no lifetime:
/// the consumer then asks again for every request, which is correct, only slower).
pub(crate) fn exec_credential(
    token: &str,
    expires_in: Option<u64>,
) -> Result<String, serde_json::Error> {
    let mut status = serde_json::json!({ "token": token });
    if let Some(secs) = expires_in {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        status["expirationTimestamp"] = rfc3339(now.saturating_add(secs)).into();
    }
    serde_json::to_string_pretty(&serde_json::json!({
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": status,
    }))
}

/// `unix` seconds as an RFC 3339 UTC timestamp (`2026-12-03T10:30:00Z`).
pub(crate) fn rfc3339(unix: u64) -> String {
    let days = unix / 86_400;
    let rem = unix % 86_400;
    // Civil date from days since 1970-01-01 (the proleptic Gregorian calendar; the
    // era-based algorithm needs no tables and is exact for every u64 day count we can get).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_294_400), "2026-12-03T10:40:00Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
    }
}
