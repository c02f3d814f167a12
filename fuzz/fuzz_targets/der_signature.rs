//! DER ECDSA signature → `r||s`: never panics, and whatever it accepts converts back to exactly
//! the input bytes (DER is canonical), for every curve.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pkjwt_core::{Curve, ecdsa_der_to_fixed, ecdsa_fixed_to_der};

fuzz_target!(|data: &[u8]| {
    for curve in [Curve::P256, Curve::P384, Curve::P521, Curve::Secp256k1] {
        if let Ok(fixed) = ecdsa_der_to_fixed(data, curve) {
            assert_eq!(fixed.len(), 2 * curve.field_len());
            let back = ecdsa_fixed_to_der(&fixed, curve).expect("accepted r||s re-encodes");
            assert_eq!(back, data, "accepted DER is not canonical");
        }
        if data.len() == 2 * curve.field_len() {
            if let Ok(der) = ecdsa_fixed_to_der(data, curve) {
                assert_eq!(ecdsa_der_to_fixed(&der, curve).expect("round trip"), data);
            }
        }
    }
});
