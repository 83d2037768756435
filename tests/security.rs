//! Security properties of the workspace that are about its source, not its behaviour:
//! every crate forbids unsafe code. (The behavioural ones have their own tests: replies
//! only from the connected peer and only for their own request in `bad_input.rs` and
//! `udp.rs`, the 65,543-byte reassembly bound in `bad_input.rs`, the reassembler's
//! proptest and the `reassembler` fuzz target.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The `members = [...]` of the root manifest.
fn members(manifest: &str) -> Vec<String> {
    let start = manifest
        .find("members = [")
        .expect("the root manifest lists its members");
    let list = &manifest[start + "members = [".len()..];
    let list = &list[..list.find(']').expect("the members list ends")];
    list.split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect()
}

/// True when the manifest has `[lints]` followed by `workspace = true`.
fn inherits_lints(manifest: &str) -> bool {
    let mut lines = manifest.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line == "[lints]" {
            return lines.find(|l| !l.is_empty()) == Some("workspace = true");
        }
    }
    false
}

#[test]
fn every_crate_forbids_unsafe_code() {
    let manifest = read("Cargo.toml");
    let lints = manifest
        .split("[workspace.lints.rust]")
        .nth(1)
        .expect("the workspace has Rust lints");
    let lints = lints.split("\n[").next().unwrap();
    assert!(
        lints
            .lines()
            .any(|l| l.replace(' ', "") == "unsafe_code=\"forbid\""),
        "[workspace.lints.rust] must set unsafe_code = \"forbid\""
    );
    let members = members(&manifest);
    assert!(members.len() >= 9, "members: {members:?}");
    for member in &members {
        let crate_manifest = read(&format!("{member}/Cargo.toml"));
        assert!(
            inherits_lints(&crate_manifest),
            "{member}/Cargo.toml must have `[lints] workspace = true` (unsafe_code = forbid)"
        );
    }
    // The published crates say so in their roots too, where readers (and docs.rs) see it.
    for member in members.iter().filter(|m| m.starts_with("crates/")) {
        let roots: Vec<String> = ["src/lib.rs", "src/main.rs"]
            .iter()
            .map(|file| format!("{member}/{file}"))
            .filter(|path| root().join(path).exists())
            .collect();
        assert!(!roots.is_empty(), "{member} has no crate root");
        for path in roots {
            assert!(
                read(&path).contains("#![forbid(unsafe_code)]"),
                "{path} must start with #![forbid(unsafe_code)]"
            );
        }
    }
    // The fuzz crate is outside the workspace and its lints: its library carries the
    // attribute itself. (Its libFuzzer entry points cannot: `fuzz_target!` expands to
    // an exported `extern "C"` function.)
    for path in ["fuzz/src/lib.rs", "fuzz/src/targets.rs"] {
        assert!(
            read(path).contains("#![forbid(unsafe_code)]"),
            "{path} must forbid unsafe code"
        );
    }
    assert!(
        manifest.contains("exclude = [\"fuzz\"]"),
        "fuzz/ stays outside the workspace (it needs nightly)"
    );
}
