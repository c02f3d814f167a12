//! `--help` of `pkjwt` and of every subcommand, compared with the texts kept under
//! `tests/snapshots/`: a change to a flag, its help, its environment variable or an example
//! shows up as a diff to review. `PKJWT_UPDATE_SNAPSHOTS=1` rewrites the files instead.
//!
//! The terminal is fixed (COLUMNS=100, an empty environment otherwise) so the text does not
//! depend on who runs the test: clap wraps to COLUMNS and shows a set `PKJWT_*` variable's value.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_pkjwt");

/// Every command line whose help is kept: the top level, each subcommand, and rotate's actions.
const COMMANDS: &[&[&str]] = &[
    &[],
    &["keygen"],
    &["pubkey"],
    &["assert"],
    &["verify"],
    &["cert"],
    &["token"],
    &["serve"],
    &["rotate"],
    &["rotate", "init"],
    &["rotate", "begin"],
    &["rotate", "apply"],
    &["rotate", "status"],
    &["rotate", "prune"],
    &["register"],
    &["agent"],
    &["agent", "status"],
    &["agent", "assertion"],
];

fn help(args: &[&str]) -> String {
    let o = Command::new(BIN)
        .args(args)
        .arg("--help")
        .env_clear()
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pkjwt {args:?} --help: {:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn snapshot_path(args: &[&str]) -> PathBuf {
    let name = std::iter::once("pkjwt")
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join("-");
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.help.txt"))
}

/// The first differing lines of `want` and `got`, `-`/`+` marked, with a line of context.
fn diff(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let first = w.iter().zip(&g).take_while(|(a, b)| a == b).count();
    let mut out = String::new();
    if first > 0 {
        out.push_str(&format!("  {}\n", w[first - 1]));
    }
    // Show up to 12 lines from the first difference on, each side.
    for l in w.iter().skip(first).take(12) {
        out.push_str(&format!("- {l}\n"));
    }
    for l in g.iter().skip(first).take(12) {
        out.push_str(&format!("+ {l}\n"));
    }
    format!("line {}:\n{out}", first + 1)
}

#[test]
fn help_of_every_subcommand_matches_its_snapshot() {
    let update = std::env::var_os("PKJWT_UPDATE_SNAPSHOTS").is_some_and(|v| v == "1");
    // `pkjwt --help` lists the key reference forms and marks those of backends left out of the
    // build: its snapshot is of the full build (the default features).
    let version = Command::new(BIN).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    let full_build = version.contains("pkcs11")
        && version.contains("aws-kms")
        && version.contains("azure-kv")
        && version.contains("gcp-kms");
    let mut failures = Vec::new();
    for args in COMMANDS {
        if args.is_empty() && !full_build {
            eprintln!("pkjwt --help not compared: this build has fewer backends ({version})");
            continue;
        }
        let got = help(args);
        let path = snapshot_path(args);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run with PKJWT_UPDATE_SNAPSHOTS=1 to write it",
                path.display()
            )
        });
        if want != got {
            failures.push(format!(
                "pkjwt {} --help differs from {}\n{}",
                args.join(" "),
                path.display(),
                diff(&want, &got)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(if the change is intended, rerun with PKJWT_UPDATE_SNAPSHOTS=1 and review the \
         files)",
        failures.join("\n")
    );
}

/// The subcommands `pkjwt --help` lists are exactly those with a snapshot, so a new subcommand
/// cannot go without one.
#[test]
fn every_subcommand_has_a_snapshot() {
    let top = help(&[]);
    let listed: Vec<&str> = top
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        // A name starts a line; its description's continuation lines are indented further.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(listed.len() >= 9, "{top}");
    for c in listed {
        assert!(
            COMMANDS.iter().any(|a| a == &[c]),
            "pkjwt {c} has no help snapshot: add it to COMMANDS"
        );
    }
}

/// The examples under `register --help` start at the same indentation as every other
/// subcommand's (they were indented by 10 more columns from the second line on).
#[test]
fn register_examples_are_indented_like_the_others() {
    let h = help(&["register"]);
    let examples: Vec<&str> = h
        .lines()
        .skip_while(|l| *l != "Examples:")
        .skip(1)
        .collect();
    assert!(examples.len() >= 5, "{h}");
    for l in examples {
        assert!(
            l.starts_with("  pkjwt ") || l.starts_with("    --"),
            "mis-indented example line {l:?} in\n{h}"
        );
    }
}
