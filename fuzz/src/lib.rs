//! The fuzz targets of the `smp` workspace as plain functions.
//!
//! Each function in [`targets`] and [`serial_targets`] takes the fuzzer's bytes and
//! panics when a property breaks. The libFuzzer binaries in `fuzz_targets/` call them, and
//! so does the workspace's stable test `tests/fuzz_corpus.rs`, which replays `fuzz/corpus/`.
#![forbid(unsafe_code)]

pub mod serial_targets;
pub mod targets;
