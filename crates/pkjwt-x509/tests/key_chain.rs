//! `key_chain`: the certificate chain published for a key (`x5c`, `x5t#S256`), from a file or
//! from what the backend keeps with the key, always led by the certificate that holds the key.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use pkjwt_core::{Algorithm, KeyUri, PublicKey, Signature, Signer};
use pkjwt_x509::{CertOptions, X509Error, key_chain, self_signed};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pkjwt-x509-chain-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn key(dir: &Path, name: &str) -> pkjwt_file::FileSigner {
    let path = dir.join(format!("{name}.pem"));
    let KeyUri::File(uri) = KeyUri::parse(path.to_str().unwrap()).unwrap() else {
        panic!()
    };
    pkjwt_file::generate(&uri, Algorithm::ES256, &Default::default()).unwrap()
}

/// A signer whose backend keeps `chain` with the key, in the order given (as a PKCS#11 token
/// lists certificate objects: in no particular order).
#[derive(Debug)]
struct Kept<'a> {
    inner: &'a pkjwt_file::FileSigner,
    chain: Vec<Vec<u8>>,
}

#[async_trait::async_trait]
impl Signer for Kept<'_> {
    fn algorithm(&self) -> Algorithm {
        self.inner.algorithm()
    }
    fn public_key(&self) -> &PublicKey {
        self.inner.public_key()
    }
    async fn sign(&self, message: &[u8]) -> pkjwt_core::Result<Signature> {
        self.inner.sign(message).await
    }
    fn certificate_chain(&self) -> &[Vec<u8>] {
        &self.chain
    }
}

async fn cert(signer: &pkjwt_file::FileSigner, cn: &str) -> Vec<u8> {
    self_signed(signer, &CertOptions::new(&format!("CN={cn}")).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_leaf_comes_first_from_a_file_or_from_the_backend() {
    let dir = tmpdir("order");
    let a = key(&dir, "a");
    let b = key(&dir, "b");
    let (cert_a, cert_b) = (cert(&a, "a").await, cert(&b, "b").await);

    // Nothing kept, no file: no chain.
    assert!(key_chain(None, &a).unwrap().is_none());

    // Kept with the key, the key's own certificate second: it is moved to the front.
    let kept = Kept {
        inner: &a,
        chain: vec![cert_b.clone(), cert_a.clone()],
    };
    assert_eq!(
        key_chain(None, &kept).unwrap().unwrap(),
        [cert_a.clone(), cert_b.clone()]
    );

    // A file wins over what is kept, and its order is kept (leaf first, as given).
    let file = dir.join("chain.pem");
    let pem = pkjwt_x509::pem("CERTIFICATE", &cert_b) + &pkjwt_x509::pem("CERTIFICATE", &cert_a);
    std::fs::write(&file, pem).unwrap();
    let kept_b = Kept {
        inner: &b,
        chain: vec![cert_a.clone()],
    };
    assert_eq!(
        key_chain(Some(&file), &kept_b).unwrap().unwrap(),
        [cert_b, cert_a]
    );
}

#[tokio::test]
async fn a_certificate_of_another_key_is_refused_naming_where_it_came_from() {
    let dir = tmpdir("mismatch");
    let a = key(&dir, "a");
    let b = key(&dir, "b");
    let cert_b = cert(&b, "b").await;

    // Kept with the key but holding another key: refused, not published as the key's.
    let kept = Kept {
        inner: &a,
        chain: vec![cert_b.clone()],
    };
    let e = key_chain(None, &kept).unwrap_err();
    assert!(matches!(e, X509Error::NoStoredMatch { count: 1 }), "{e:?}");
    assert!(e.to_string().contains("holds its public key"), "{e}");

    // A file whose first certificate is another key's: the error names the file and both keys.
    let file = dir.join("b.crt");
    std::fs::write(&file, pkjwt_x509::pem("CERTIFICATE", &cert_b)).unwrap();
    let e = key_chain(Some(&file), &a).unwrap_err().to_string();
    assert!(
        e.contains(&file.display().to_string()) && e.contains("is not the signer's"),
        "{e}"
    );

    // A missing file and a file with no certificate: named, with the reason.
    let missing = dir.join("missing.pem");
    let e = key_chain(Some(&missing), &a).unwrap_err().to_string();
    assert!(
        e.contains("missing.pem") && e.contains("No such file"),
        "{e}"
    );
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let e = key_chain(Some(&empty), &a).unwrap_err().to_string();
    assert!(
        e.contains("empty.pem") && e.contains("expected \"-----BEGIN CERTIFICATE-----\""),
        "{e}"
    );
    // A key file given as the certificate: what it holds instead is named.
    let e = key_chain(Some(&dir.join("a.pem")), &a)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no CERTIFICATE block (found: PRIVATE KEY)"),
        "{e}"
    );
}
