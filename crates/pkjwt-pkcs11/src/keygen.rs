//! Key generation on the token ([`generate`]): the private key never exists outside it.
//!
//! The private key is created with `CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE` true,
//! `CKA_EXTRACTABLE` false and sign-only usage: `CKA_SIGN` true, `CKA_DECRYPT`, `CKA_UNWRAP`,
//! `CKA_DERIVE` false, set explicitly because SoftHSM2 (and others) default some of them to
//! true. Both halves carry the URI's label (`object=`) and id (`id=`, or 16 random bytes from
//! the token when absent). A key is never created when any object on the token already has that
//! label or id: two keys under one label make every later `object=` URI ambiguous (and AWS
//! CloudHSM requires unique labels).

use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::Attribute;
use pkjwt_core::{
    Algorithm, DEFAULT_RSA_BITS, Family, GenerateOptions, MAX_RSA_BITS, MIN_RSA_BITS,
    Pkcs11ObjectType, Pkcs11Uri, PublicKey, RsaSizes,
};

use crate::error::Pkcs11Error;
use crate::module::Module;
use crate::object::{self, FoundKey, KeyKind, OID_ED25519};
use crate::signer::read_pin;
use crate::token::{self, TokenSelector};
use crate::{Pkcs11Options, run_blocking};

/// Generates a key pair for `algorithm` on the token `uri` names, labelled `object=` and with
/// the URI's `id=` (or a random id), and returns its public key.
///
/// The URI needs `object=` (the label); `type=`, if given, must be `private`. EC keys are made
/// on the algorithm's curve; RSA keys with [`GenerateOptions::rsa_bits`] bits (default
/// [`DEFAULT_RSA_BITS`]; any size from [`MIN_RSA_BITS`] to [`MAX_RSA_BITS`] is asked of the token)
/// and exponent 65537, for any RS*/PS* algorithm; Ed25519 keys for EdDSA. An RSA size for
/// another algorithm, or outside that range, is refused ([`Pkcs11Error::KeygenRequest`]) before
/// the token is touched. Fails with
/// [`Pkcs11Error::DuplicateKey`] if any object on the token already has the label or id.
/// Touches the token, so it runs on a blocking thread.
///
/// A `pin-value` in the URI is accepted here without a warning (there is no signer to carry
/// one); callers should warn themselves when [`Pkcs11Uri::has_pin_value`] is true.
pub async fn generate(
    uri: &Pkcs11Uri,
    algorithm: Algorithm,
    options: &GenerateOptions,
    opts: &Pkcs11Options,
) -> Result<PublicKey, Pkcs11Error> {
    let uri = uri.clone();
    let options = options.clone();
    let opts = opts.clone();
    run_blocking(move || generate_blocking(&uri, algorithm, &options, &opts)).await
}

fn generate_blocking(
    uri: &Pkcs11Uri,
    algorithm: Algorithm,
    options: &GenerateOptions,
    opts: &Pkcs11Options,
) -> Result<PublicKey, Pkcs11Error> {
    let request = |reason: String| Pkcs11Error::KeygenRequest {
        uri: uri.to_string(),
        reason,
    };
    if matches!(
        uri.object_type,
        Some(Pkcs11ObjectType::Public | Pkcs11ObjectType::Cert)
    ) {
        return Err(request(
            "type= must be private or absent: a key pair is generated".into(),
        ));
    }
    let label = uri
        .object
        .clone()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| request("the URI needs object=LABEL to name the new key".into()))?;
    let sizes = RsaSizes::Between(MIN_RSA_BITS, MAX_RSA_BITS);
    let bits = options
        .rsa_bits_for(algorithm, "PKCS#11", DEFAULT_RSA_BITS, sizes)
        .map_err(|e| request(e.to_string()))?
        .unwrap_or(DEFAULT_RSA_BITS);
    let module = Module::load(uri, opts)?;
    let token = token::find_token(&module, &TokenSelector::from_uri(uri))?;
    let mut warnings = Vec::new();
    let pin = read_pin(uri, &token, &mut warnings)?;
    let session = token::open_session(&module, &token, true)?;
    // The PIN was read just now: only a refusal from here on stops it.
    let mark = module.refusal_mark();
    token::ensure_login(&module, &token, &session, pin.as_ref(), mark, None)?;
    let call = |what: &str, e| Pkcs11Error::call(format!("{what} on token \"{}\"", token.label), e);

    // Refuse duplicates: any object class, by label or by id.
    let mut clashes = session
        .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
        .map_err(|e| call("searching for objects with the same label", e))?;
    if let Some(id) = &uri.id {
        for h in session
            .find_objects(&[Attribute::Id(id.clone())])
            .map_err(|e| call("searching for objects with the same id", e))?
        {
            if !clashes.contains(&h) {
                clashes.push(h);
            }
        }
    }
    if !clashes.is_empty() {
        let existing = clashes
            .iter()
            .map(|h| object::describe_object(&session, *h))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Pkcs11Error::DuplicateKey {
            token: token.label.clone(),
            existing,
        });
    }

    let id = match &uri.id {
        Some(id) => id.clone(),
        None => session
            .generate_random_vec(16)
            .map_err(|e| call("drawing a random key id", e))?,
    };

    let (mechanism, gen_type, kind, mut public, mut private) = match algorithm.family() {
        Family::Ecdsa(curve) => {
            let mut params = vec![0x06, curve.oid().len() as u8];
            params.extend_from_slice(curve.oid());
            (
                Mechanism::EccKeyPairGen,
                MechanismType::ECC_KEY_PAIR_GEN,
                KeyKind::Ec(curve),
                vec![Attribute::EcParams(params)],
                vec![Attribute::Derive(false)],
            )
        }
        Family::RsaPss | Family::RsaPkcs1 => (
            Mechanism::RsaPkcsKeyPairGen,
            MechanismType::RSA_PKCS_KEY_PAIR_GEN,
            KeyKind::Rsa,
            vec![
                // At most MAX_RSA_BITS (rsa_bits_for checked it): the cast is lossless.
                Attribute::ModulusBits((bits as u64).into()),
                Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
                Attribute::Encrypt(false),
                Attribute::Wrap(false),
            ],
            vec![Attribute::Decrypt(false), Attribute::Unwrap(false)],
        ),
        Family::Ed25519 => {
            let mut params = vec![0x06, OID_ED25519.len() as u8];
            params.extend_from_slice(OID_ED25519);
            (
                Mechanism::EccEdwardsKeyPairGen,
                MechanismType::ECC_EDWARDS_KEY_PAIR_GEN,
                KeyKind::Ed25519,
                vec![Attribute::EcParams(params)],
                vec![Attribute::Derive(false)],
            )
        }
        _ => {
            return Err(request(format!(
                "no key type known for algorithm {algorithm}"
            )));
        }
    };
    let mechs = module
        .ctx()
        .get_mechanism_list(token.slot)
        .map_err(|e| call("listing mechanisms", e))?;
    if !mechs.contains(&gen_type) {
        return Err(Pkcs11Error::MechanismMissing {
            token: token.label.clone(),
            alg: algorithm,
            wanted: match kind {
                KeyKind::Ec(_) => "CKM_EC_KEY_PAIR_GEN",
                KeyKind::Rsa => "CKM_RSA_PKCS_KEY_PAIR_GEN",
                KeyKind::Ed25519 => "CKM_EC_EDWARDS_KEY_PAIR_GEN",
            },
        });
    }
    public.extend([
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.clone()),
    ]);
    private.extend([
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.clone()),
    ]);
    if kind != KeyKind::Rsa {
        private.extend([Attribute::Decrypt(false), Attribute::Unwrap(false)]);
    }
    let (_pub_handle, priv_handle) = session
        .generate_key_pair(&mechanism, &public, &private)
        .map_err(|e| call(&format!("generating a key pair for {algorithm}"), e))?;
    let key = FoundKey {
        handle: priv_handle,
        label: Some(label),
        id,
    };
    let (kind, attrs) = object::inspect_private_key(&session, &token, &key)?;
    object::public_key(&session, &token, &key, kind, &attrs)
}
