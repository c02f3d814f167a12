//! Public JWK and JWKS parsing: never panics; what parses serializes to JSON that parses to the
//! same keys.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pkjwt_core::{Jwk, JwkSet};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(jwk) = Jwk::from_json(s) {
        let key = jwk.to_public_key().expect("a parsed JWK has a valid key");
        let again = Jwk::from_json(&jwk.to_json()).expect("re-parse");
        assert_eq!(again.to_public_key().expect("key"), key);
    }
    if let Ok(set) = JwkSet::from_json(s) {
        let again = JwkSet::from_json(&set.to_json()).expect("re-parse set");
        assert_eq!(again.keys().len(), set.keys().len());
    }
});
