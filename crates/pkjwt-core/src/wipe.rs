//! Wiping secrets held in JSON values (issue 12, item 12): a private JWK's `d` on its way to the
//! crypto library, a token response or a registration response holding bearer tokens. Strings
//! are overwritten in place before their memory is freed; object keys are member names, not
//! secrets, and stay.

use serde_json::{Map, Value};
use zeroize::Zeroize;

/// Overwrites every string (and number text) in `v` with zeros and leaves `Null` behind.
pub fn wipe_json(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(a) => a.iter_mut().for_each(wipe_json),
        Value::Object(m) => wipe_json_map(m),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    *v = Value::Null;
}

/// [`wipe_json`] for each member of an object.
pub fn wipe_json_map(m: &mut Map<String, Value>) {
    m.values_mut().for_each(wipe_json);
}

/// A JSON value wiped when dropped.
#[derive(Clone, Default, PartialEq)]
pub struct WipedJson(pub Value);

impl Drop for WipedJson {
    fn drop(&mut self) {
        wipe_json(&mut self.0);
    }
}

impl std::fmt::Debug for WipedJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WipedJson(<hidden>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // What the overwrite itself does is zeroize's contract (memory cannot be read after it is
    // freed without unsafe code); these check that every secret-bearing value is reached.
    #[test]
    fn every_string_is_reached() {
        let text = r#"{"d":"c2VjcmV0","nested":[{"t":"tok"},"x"],"n":1,"b":true}"#;
        let mut m: Map<String, Value> = serde_json::from_str(text).unwrap();
        wipe_json_map(&mut m);
        assert_eq!(m.keys().collect::<Vec<_>>(), ["d", "nested", "n", "b"]);
        assert!(m.values().all(Value::is_null), "{m:?}");
        let mut v: Value = serde_json::from_str(text).unwrap();
        wipe_json(&mut v);
        assert_eq!(v, Value::Null);
        let w = WipedJson(serde_json::from_str(text).unwrap());
        assert_eq!(format!("{w:?}"), "WipedJson(<hidden>)");
    }
}
