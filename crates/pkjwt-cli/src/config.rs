//! The configuration file (`--config FILE` before the subcommand, or `PKJWT_CONFIG`): a JSON
//! object with one section per subcommand whose members are that subcommand's long options.
//!
//! ```json
//! { "token": { "key": "file:/etc/pkjwt/client.pem", "client-id": "payments",
//!              "issuer": "https://as.example.com", "scope": "accounts:read" },
//!   "serve": { "key": ["file:/etc/pkjwt/a.pem", "file:/etc/pkjwt/b.pem"], "listen": "0.0.0.0:8000" } }
//! ```
//!
//! Precedence: command-line flags, then environment variables, then the file. The file is turned
//! into arguments inserted right after the subcommand name (so clap validates them as usual),
//! skipping every option already on the command line or set through its `PKJWT_*` variable.
//! Strings become `--name value`, arrays repeat the option, `true` is a bare flag, `false` is
//! left out.

use std::ffi::OsString;

use serde_json::Value;

/// Expands `args` (program name first) with the configuration file's options, or explains why
/// the file cannot be used.
pub(crate) fn expand(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let mut args = args;
    // `--config FILE` / `--config=FILE` before the subcommand.
    let mut path = std::env::var_os("PKJWT_CONFIG");
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy().into_owned();
        if a == "--config" {
            if i + 1 >= args.len() {
                return Err("--config needs a FILE".into());
            }
            path = Some(args.remove(i + 1));
            args.remove(i);
            continue;
        }
        if let Some(p) = a.strip_prefix("--config=") {
            path = Some(p.into());
            args.remove(i);
            continue;
        }
        if !a.starts_with('-') {
            break; // the subcommand
        }
        i += 1;
    }
    let Some(path) = path else {
        return Ok(args);
    };
    let shown = std::path::Path::new(&path).display().to_string();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read the configuration file {shown}: {e}"))?;
    let config: Value = serde_json::from_str(&text).map_err(|e| {
        format!("the configuration file {shown} is not a JSON object of sections: {e}")
    })?;
    let Some(sections) = config.as_object() else {
        return Err(format!(
            "the configuration file {shown} must be a JSON object with one section per subcommand"
        ));
    };
    // The subcommand is the first argument that is not an option.
    let Some(pos) = args
        .iter()
        .skip(1)
        .position(|a| !a.to_string_lossy().starts_with('-'))
        .map(|p| p + 1)
    else {
        return Ok(args);
    };
    let sub = args[pos].to_string_lossy().into_owned();
    let Some(section) = sections.get(&sub) else {
        return Ok(args);
    };
    let Some(options) = section.as_object() else {
        return Err(format!(
            "{shown}: section {sub:?} must be an object of option names and values"
        ));
    };
    let given: Vec<String> = args[pos + 1..]
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut extra: Vec<OsString> = Vec::new();
    for (name, value) in options {
        let flag = format!("--{name}");
        let on_command_line = given
            .iter()
            .any(|g| g == &flag || g.starts_with(&format!("{flag}=")));
        let env = format!("PKJWT_{}", name.to_uppercase().replace('-', "_"));
        if on_command_line || std::env::var_os(&env).is_some() {
            continue;
        }
        let mut push = |v: &Value| -> Result<(), String> {
            match v {
                Value::String(s) => {
                    extra.push(flag.clone().into());
                    extra.push(s.into());
                }
                Value::Number(n) => {
                    extra.push(flag.clone().into());
                    extra.push(n.to_string().into());
                }
                Value::Bool(true) => extra.push(flag.clone().into()),
                Value::Bool(false) | Value::Null => {}
                _ => {
                    return Err(format!(
                        "{shown}: {sub}.{name} must be a string, number, boolean or an array of \
                         those"
                    ));
                }
            }
            Ok(())
        };
        match value {
            Value::Array(items) => {
                for v in items {
                    push(v)?;
                }
            }
            v => push(v)?,
        }
    }
    let tail = args.split_off(pos + 1);
    args.extend(extra);
    args.extend(tail);
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn file_options_fill_in_after_the_subcommand_and_flags_win() {
        let dir = std::env::temp_dir().join(format!("pkjwt-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.json");
        std::fs::write(
            &f,
            r#"{"token": {"client-id": "from-file", "issuer": "https://as", "json": true,
                          "resource": ["r1", "r2"], "attempts": 2},
                "serve": {"listen": "127.0.0.1:9"}}"#,
        )
        .unwrap();
        let out = expand(os(&[
            "pkjwt",
            "--config",
            f.to_str().unwrap(),
            "token",
            "--client-id",
            "from-flag",
        ]))
        .unwrap();
        let out: Vec<String> = out
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(&out[..2], ["pkjwt", "token"]);
        assert!(!out.contains(&"from-file".to_string()), "{out:?}");
        assert_eq!(out[out.len() - 2..], ["--client-id", "from-flag"]);
        for w in [
            ["--issuer", "https://as"],
            ["--resource", "r1"],
            ["--resource", "r2"],
            ["--attempts", "2"],
        ] {
            assert!(out.windows(2).any(|p| p == w), "{w:?} in {out:?}");
        }
        assert!(out.contains(&"--json".to_string()));
        std::fs::write(&f, "[1]").unwrap();
        let e = expand(os(&["pkjwt", "--config", f.to_str().unwrap(), "token"])).unwrap_err();
        assert!(e.contains("one section per subcommand"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
