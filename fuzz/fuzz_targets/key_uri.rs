//! Key-URI parsing: never panics; a parsed URI prints in a form that parses to the same value,
//! and never prints a pin-value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pkjwt_core::KeyUri;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match KeyUri::parse(s) {
        Ok(uri) => {
            let shown = uri.to_string();
            if let KeyUri::Pkcs11(p) = &uri {
                if let Some(pin) = &p.pin_value {
                    // The PIN may occur elsewhere by chance (a label equal to it); what must
                    // never appear is the PIN as the pin-value.
                    assert!(
                        shown.contains("pin-value=<redacted>"),
                        "PIN not redacted: {shown}"
                    );
                    if !pin.is_empty() {
                        assert!(
                            !shown.contains(&format!("pin-value={}", pin.as_str())),
                            "PIN printed: {shown}"
                        );
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
