//! Key-URI parsing: never panics; a parsed URI prints in a form that parses to the same value,
//! and never prints a pin-value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pkjwt_core::KeyUri;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    match KeyUri::parse(s) {
        Ok(uri) => {
            let shown = uri.to_string();
            if let KeyUri::Pkcs11(p) = &uri {
                if let Some(pin) = &p.pin_value {
                    if pin.len() >= 4 {
                        assert!(!shown.contains(pin.as_str()), "PIN printed: {shown}");
                    }
                }
                if p.pin_value.is_none() {
                    assert_eq!(KeyUri::parse(&shown).expect("printed URI parses"), uri);
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
