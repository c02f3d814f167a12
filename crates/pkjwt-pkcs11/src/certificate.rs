//! Certificates stored on the token next to their key (same `CKA_ID` and `CKA_LABEL`), so that
//! the certificate travels with the key and feeds `x5c` / `x5t#S256` (issue 6).

use cryptoki::object::{Attribute, CertificateType, ObjectClass};
use pkjwt_core::{Pkcs11Uri, PublicKey};

use crate::object::{self, ObjectSelector};
use crate::signer::read_pin;
use crate::token::{self, TokenSelector};
use crate::{Pkcs11Error, Pkcs11Options, module::Module, run_blocking};

/// Stores `cert_der` on the token as an X.509 certificate object with the id and label of the
/// private key `uri` names. Refuses a certificate for another key, and a second certificate for
/// the same id. Runs on a blocking thread.
pub async fn store_certificate(
    uri: &Pkcs11Uri,
    cert_der: Vec<u8>,
    opts: &Pkcs11Options,
) -> Result<(), Pkcs11Error> {
    let uri = uri.clone();
    let opts = opts.clone();
    run_blocking(move || store_blocking(&uri, &cert_der, &opts)).await
}

fn store_blocking(uri: &Pkcs11Uri, der: &[u8], opts: &Pkcs11Options) -> Result<(), Pkcs11Error> {
    let spki = object::certificate_spki(der).map_err(|e| Pkcs11Error::BadCertificate(e.into()))?;
    let cert_key =
        PublicKey::from_spki_der(spki).map_err(|e| Pkcs11Error::BadCertificate(e.to_string()))?;
    let subject = object::certificate_subject(der)
        .map_err(|e| Pkcs11Error::BadCertificate(e.into()))?
        .to_vec();
    let module = Module::load(uri, opts)?;
    let token = token::find_token(&module, &TokenSelector::from_uri(uri))?;
    let mut warnings = Vec::new();
    let pin = read_pin(uri, &token, &mut warnings)?;
    let session = token::open_session(&module, &token, true)?;
    // The PIN was read just now: only a refusal from here on stops it.
    let mark = module.refusal_mark();
    token::ensure_login(&module, &token, &session, pin.as_ref(), mark, None)?;
    let sel = ObjectSelector {
        label: uri.object.clone(),
        id: uri.id.clone(),
    };
    let key = object::find_private_key(&session, &token, &sel)?;
    let (kind, attrs) = object::inspect_private_key(&session, &token, &key)?;
    let token_key = object::public_key(&session, &token, &key, kind, &attrs)?;
    if token_key != cert_key {
        return Err(Pkcs11Error::CertificateMismatch {
            token: token.label.clone(),
            key: key.name(),
            cert_key: cert_key.describe(),
            token_key: token_key.describe(),
        });
    }
    if !object::certificates(&session, &token, &key)?.is_empty() {
        return Err(Pkcs11Error::CertificateExists {
            token: token.label.clone(),
            key: key.name(),
        });
    }
    let mut template = vec![
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::CertificateType(CertificateType::X_509),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Id(key.id.clone()),
        Attribute::Subject(subject),
        Attribute::Value(der.to_vec()),
    ];
    if let Some(label) = &key.label {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    session.create_object(&template).map_err(|e| {
        Pkcs11Error::call(
            format!("storing the certificate on token \"{}\"", token.label),
            e,
        )
    })?;
    Ok(())
}
