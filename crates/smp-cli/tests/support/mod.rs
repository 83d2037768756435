//! What the `smp` binary tests share: the result of one run, and scratch folders.
// Each test binary uses what it needs of it (the interop tests need no simulated device).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

pub(crate) mod sim;

/// What one run of `smp` did.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) status: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn from_output(output: Output) -> Self {
        Self {
            status: output.status.code().expect("smp exits"),
            stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
            stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
        }
    }

    /// Stdout as the one JSON document it must be.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:#?}"))
    }

    /// Asserts success and returns stdout.
    pub(crate) fn ok(&self) -> &str {
        assert_eq!(self.status, 0, "{self:#?}");
        &self.stdout
    }

    /// Asserts success and returns the JSON document.
    pub(crate) fn ok_json(&self) -> Value {
        self.ok();
        self.json()
    }
}

/// A fresh folder for one test's files, under `suite`.
pub(crate) fn scratch(suite: &str, test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(suite)
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}
