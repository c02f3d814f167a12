//! pkjwt's examples live beside this file; run one with
//! `cargo run -p pkjwt-examples --example NAME` (see `README.md` here).
