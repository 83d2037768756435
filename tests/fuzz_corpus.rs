//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the same
//! functions the libFuzzer targets call, on the stable toolchain: every input that ever
//! mattered keeps being checked by `cargo test`, without nightly or libFuzzer.
//! `cargo xtask fuzz` runs the fuzzers themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// The target functions, compiled here from the fuzz crate's own source.
#[allow(unreachable_pub)]
#[path = "../fuzz/src/targets.rs"]
mod targets;

#[allow(unreachable_pub)]
#[path = "../fuzz/src/serial_targets.rs"]
mod serial_targets;

/// Largest corpus the repository should carry.
const MAX_FILES: usize = 200;
const MAX_BYTES: u64 = 1 << 20;

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// The corpus files of `target`, sorted; there must be some.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = corpus_root().join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no inputs", dir.display());
    files
}

/// Runs `check` on every corpus file of `target`, naming the file that fails.
fn replay(target: &str, check: fn(&[u8])) {
    for path in corpus(target) {
        let data = std::fs::read(&path).unwrap();
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!(
                "{target}: the corpus input {} breaks a property (reproduce with \
                 `cd fuzz && cargo +nightly fuzz run {target} {}`)",
                path.display(),
                path.display()
            );
        }
    }
}

#[test]
fn header_decode_corpus() {
    replay("header_decode", targets::header_decode);
}

#[test]
fn reply_decode_corpus() {
    replay("reply_decode", targets::reply_decode);
}

#[test]
fn reassembler_corpus() {
    replay("reassembler", targets::reassembler);
}

#[test]
fn client_replies_corpus() {
    replay("client_replies", targets::client_replies);
}

#[test]
fn serial_deframer_corpus() {
    replay("serial_deframer", serial_targets::serial_deframer);
}

#[test]
fn the_corpus_stays_small() {
    let mut files = 0;
    let mut bytes = 0;
    for target in [
        "header_decode",
        "reply_decode",
        "reassembler",
        "client_replies",
        "serial_deframer",
    ] {
        for path in corpus(target) {
            files += 1;
            bytes += std::fs::metadata(&path).unwrap().len();
        }
    }
    assert!(
        files < MAX_FILES && bytes < MAX_BYTES,
        "the checked-in corpus has {files} files, {bytes} bytes: minimise it \
         (`cargo +nightly fuzz cmin <target>`) before adding more"
    );
}
