//! How errors of every crate print (issue 13, item 3 and the error half of item 2).
//!
//! The rule (docs/design.md, "Errors"): a variant shows its cause or returns it from `source()`,
//! never both, and `pkjwt_core::display_chain` is the one printer, dropping nothing. The table
//! pins the exact line of representative errors of each crate, so that a cause printed twice or
//! lost fails here; a second test checks that the messages that used to name CLI flags now name
//! API fields only.

use std::error::Error as StdError;
use std::io;
use std::path::PathBuf;

use pkjwt_aws_kms::AwsKmsError;
use pkjwt_client::ClientError;
use pkjwt_core::{Algorithm, Error, GenerateOptions, display_chain};
use pkjwt_file::FileError;
use pkjwt_pkcs11::Pkcs11Error;
use pkjwt_pkcs11::cryptoki::context::Function;
use pkjwt_pkcs11::cryptoki::error::{Error as CkError, RvError};
use pkjwt_verify::{DiscoveryError, JwksError};
use pkjwt_x509::X509Error;

fn core_backend_pkcs11_algorithm() -> Error {
    Error::from(Pkcs11Error::Algorithm {
        key: "\"rsa\" (id 07)".into(),
        source: Error::AlgorithmMismatch {
            requested: "ES256".into(),
            key: "an RSA 2048-bit key".into(),
            supported: "PS256, RS256".into(),
        },
    })
}

/// Representative errors of every crate and the exact line a person sees.
fn table() -> Vec<(&'static str, Box<dyn StdError + Send + Sync>, &'static str)> {
    let mut small = GenerateOptions::default();
    small.rsa_bits = Some(1024);
    let in_memory = pkjwt_file::generate_in_memory(Algorithm::RS256, &small)
        .map(|_| ())
        .expect_err("1024-bit RSA is refused");
    vec![
        (
            "file I/O behind the core's Backend",
            Box::new(Error::from(FileError::Io {
                path: PathBuf::from("keys/k.pem"),
                source: io::Error::new(io::ErrorKind::PermissionDenied, "permission denied"),
            })),
            "file backend: keys/k.pem: permission denied",
        ),
        (
            "file key refused in memory (real generate_in_memory call)",
            Box::new(Error::from(in_memory)),
            "file backend: key refused: rsa_bits = 1024 for RS256: the file backend makes RSA keys of \
             2048, 3072 or 4096 bits",
        ),
        (
            "PKCS#11 PIN source",
            Box::new(Error::from(Pkcs11Error::PinSource {
                token: "t".into(),
                source: Error::SecretSource {
                    what: "PIN",
                    source_desc: "env:PIN_VAR".into(),
                    reason: "not set".into(),
                },
            })),
            "PKCS#11 backend: token \"t\": cannot read PIN from env:PIN_VAR: not set",
        ),
        (
            // Shown as the CKR_ name; cryptoki's own paragraph is not printed as well.
            "PKCS#11 call",
            Box::new(Error::from(Pkcs11Error::Call {
                context: "signing with key \"client\" on token \"t\"".into(),
                error: CkError::Pkcs11(RvError::SessionHandleInvalid, Function::Sign),
            })),
            "PKCS#11 backend: signing with key \"client\" on token \"t\": C_Sign returned \
             CKR_SESSION_HANDLE_INVALID",
        ),
        (
            "X.509 signing through a PKCS#11 key",
            Box::new(Error::from(
                X509Error::Sign(core_backend_pkcs11_algorithm()),
            )),
            "X.509 certificate: signing the certificate failed: PKCS#11 backend: private key \
             \"rsa\" (id 07): algorithm ES256 cannot be used with an RSA 2048-bit key; this key \
             can sign with PS256, RS256",
        ),
        (
            // The cause sits before the cleanup note: shown, so not also returned.
            "AWS KMS alias not created",
            Box::new(Error::from(AwsKmsError::AliasNotCreated {
                alias: "alias/a".into(),
                key: "k-1".into(),
                cause: Box::new(AwsKmsError::Disabled {
                    key: "k-1".into(),
                    request_id: Some("r-1".into()),
                }),
                cleanup: "the new key is scheduled for deletion".into(),
            })),
            "AWS KMS backend: created KMS key k-1 but not its alias alias/a: KMS key k-1 is \
             disabled: enable it (aws kms enable-key) or point the URI at another key (AWS \
             request id r-1); the new key is scheduled for deletion",
        ),
        (
            "client retries over a client assertion over the file backend",
            Box::new(ClientError::RetriesExhausted {
                attempts: 3,
                last: Box::new(ClientError::Assertion(Error::from(
                    FileError::WrongPassphrase {
                        path: Some(PathBuf::from("k.pem")),
                    },
                ))),
            }),
            "gave up after 3 attempts: client assertion: file backend: k.pem: cannot decrypt the \
             key: wrong passphrase, or a corrupt file",
        ),
        (
            "client signing a software statement with KMS",
            Box::new(ClientError::Sign {
                what: "software statement",
                source: Error::from(AwsKmsError::MessageLength {
                    key: "k".into(),
                    len: 5000,
                }),
            }),
            "signing the software statement: AWS KMS backend: message of 5000 bytes cannot be \
             signed with EdDSA by KMS key k: KMS signs 1 to 4096 bytes with ED25519_SHA_512",
        ),
        (
            "verifier discovery over a JWKS refusal",
            Box::new(DiscoveryError::Fetch(JwksError::InsecureUrl {
                url: "http://as.example.com/jwks".into(),
            })),
            "discovery: refusing http://as.example.com/jwks: key sets are fetched over https \
             (plain http only to loopback)",
        ),
        (
            "JWKS rotation",
            Box::new(pkjwt_jwks::JwksError::Rotation("no key signs now".into())),
            "no key signs now",
        ),
        (
            // Outside text deep in the chain is escaped once, at the printer.
            "control characters in a cause",
            Box::new(ClientError::Assertion(Error::Jwk("kid\r\nforged".into()))),
            "client assertion: invalid JWK: kid\\u{d}\\u{a}forged",
        ),
    ]
}

#[test]
fn every_cause_is_printed_once() {
    for (name, e, want) in table() {
        assert_eq!(display_chain(&*e), want, "{name}");
        // The rule itself: no link's message contains the message of its source (that would be
        // a cause shown and returned, printed twice).
        let mut cur: Option<&(dyn StdError + 'static)> = Some(&*e);
        while let Some(c) = cur {
            if let Some(s) = c.source() {
                let (outer, inner) = (c.to_string(), s.to_string());
                assert!(
                    !outer.contains(&inner),
                    "{name}: {outer:?} shows its source {inner:?} and returns it"
                );
            }
            cur = c.source();
        }
    }
}

/// The old printer dropped a cause whose text already appeared on the line; here the OS error's
/// text ("missing") is part of the path, and it is still printed.
#[test]
fn a_cause_whose_text_is_on_the_line_is_still_printed() {
    let e = Error::from(FileError::Io {
        path: PathBuf::from("keys/missing.pem"),
        source: io::Error::new(io::ErrorKind::NotFound, "missing"),
    });
    assert_eq!(display_chain(&e), "file backend: keys/missing.pem: missing");
}

#[test]
fn shown_causes_are_not_returned() {
    let e = AwsKmsError::AliasNotCreated {
        alias: "alias/a".into(),
        key: "k".into(),
        cause: Box::new(AwsKmsError::Disabled {
            key: "k".into(),
            request_id: None,
        }),
        cleanup: "nothing to clean up".into(),
    };
    assert!(e.source().is_none());
    let e = Pkcs11Error::Call {
        context: "c".into(),
        error: CkError::Pkcs11(RvError::KeyHandleInvalid, Function::Sign),
    };
    assert!(e.source().is_none());
    assert_eq!(e.rv(), Some(RvError::KeyHandleInvalid));
}

/// The library messages that used to print `--flag` hints name the API field instead (the CLI
/// adds the flag). The two OAuth error hints are checked in pkjwt-client's unit tests
/// (`OAuthError` has no public constructor).
#[tokio::test]
async fn library_messages_name_no_cli_flag() {
    let dir = std::env::temp_dir().join(format!("pkjwt-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file_uri =
        |name: &str| match pkjwt_core::KeyUri::parse(&format!("file:{}", dir.join(name).display()))
            .unwrap()
        {
            pkjwt_core::KeyUri::File(f) => f,
            other => panic!("{other:?}"),
        };
    let keystore = pkjwt_file::generate(&file_uri("k.p12"), Algorithm::ES256, &Default::default())
        .map(|_| ())
        .expect_err("a keystore needs the facade");
    let no_storage = pkjwt::store_certificate(
        &pkjwt_core::KeyUri::File(file_uri("k.pem")),
        b"not used",
        &pkjwt::OpenOptions::default(),
    )
    .await
    .expect_err("a file key has no certificate storage");
    let cases: Vec<(Box<dyn StdError + Send + Sync>, &str)> = vec![
        (
            Box::new(FileError::InsecurePermissions {
                path: PathBuf::from("k.pem"),
                mode: 0o644,
            }),
            "FileOptions::allow_insecure_permissions",
        ),
        (Box::new(keystore), "pkjwt::generate"),
        (Box::new(no_storage), "PKCS#12 keystore"),
        (
            Box::new(ClientError::ThumbprintRequired {
                profile: "entra".into(),
                what: "certificate thumbprint (x5t#S256) the server registered",
                field: "x5t_s256",
            }),
            "ClientConfig::x5t_s256",
        ),
    ];
    for (e, field) in cases {
        let shown = display_chain(&*e);
        assert!(!shown.contains("--"), "names a CLI flag: {shown}");
        assert!(shown.contains(field), "{shown} (wanted {field:?})");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
