//! The `smp-sim` binary as a process: what it writes when its output is not a terminal.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

#[test]
fn logs_to_a_file_or_pipe_carry_no_colour_codes() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_smp-sim"))
        .args(["--addr", "127.0.0.1:0", "-v"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("smp-sim starts");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("read stdout");
    assert!(
        ready.starts_with("smp-sim listening on 127.0.0.1:"),
        "{ready}"
    );
    // The startup line is logged before the ready line is printed.
    child.kill().expect("stop smp-sim");
    let mut log = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut log)
        .expect("read stderr");
    let _ = child.wait();
    assert!(log.contains("simulated device listening"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a pipe: {log:?}");
}
