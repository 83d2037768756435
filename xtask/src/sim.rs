//! Running the `smp-sim` binary from a task (demo, bench): start it, learn its address
//! from the line it prints once ready, and stop it on every path out.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::util::Result;

/// What `smp-sim` prints once it serves, before its address.
const SIM_READY: &str = "smp-sim listening on ";
/// What `smp-sim --serial` prints next, before its serial port.
const SIM_SERIAL: &str = "smp-sim serial on ";
/// How long `smp-sim` may take to print [`SIM_READY`] (it takes milliseconds).
const SIM_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `smp-sim`; dropping it kills the process by its id and reaps it, so it is
/// stopped on every path out of the task that started it, an error or a panic included.
pub(crate) struct SimGuard {
    child: Child,
    /// The task that started it, for the messages.
    task: &'static str,
}

impl Drop for SimGuard {
    fn drop(&mut self) {
        let (pid, task) = (self.child.id(), self.task);
        // An error here means the process has already exited; wait() reaps it either way.
        let _ = self.child.kill();
        match self.child.wait() {
            Ok(status) => println!("{task}: stopped smp-sim (pid {pid}, {status})"),
            Err(e) => eprintln!("{task}: could not reap smp-sim (pid {pid}): {e}"),
        }
    }
}

/// Starts `command` (smp-sim) with stdout piped and stderr to `log`, and waits until it
/// prints the address it serves.
pub(crate) fn start_sim(
    command: Command,
    log: &Path,
    task: &'static str,
) -> Result<(SimGuard, SocketAddr)> {
    start(command, log, task, false).map(|(sim, addr, _)| (sim, addr))
}

/// As [`start_sim`], for `smp-sim --serial ...`: also waits for the serial port it
/// prints (a pseudo-terminal's path or `socket://HOST:PORT`) and returns it.
pub(crate) fn start_serial_sim(
    command: Command,
    log: &Path,
    task: &'static str,
) -> Result<(SimGuard, SocketAddr, String)> {
    start(command, log, task, true).map(|(sim, addr, port)| (sim, addr, port.unwrap_or_default()))
}

fn start(
    mut command: Command,
    log: &Path,
    task: &'static str,
    serial: bool,
) -> Result<(SimGuard, SocketAddr, Option<String>)> {
    let log_file =
        File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .spawn()
        .map_err(|e| {
            format!(
                "cannot start {}: {e}",
                Path::new(command.get_program()).display()
            )
        })?;
    // Guarded from here on: an early return below kills the process.
    let mut sim = SimGuard { child, task };
    let stdout = sim
        .child
        .stdout
        .take()
        .ok_or("smp-sim's stdout was not captured")?;
    // A thread reads stdout to its end, so that the simulator never blocks or fails on a
    // full or closed pipe, and passes each line on while anyone listens.
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = lines.send(line);
        }
    });
    let deadline = Instant::now() + SIM_READY_TIMEOUT;
    let mut listening = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => {
                if let Some(addr) = line.strip_prefix(SIM_READY) {
                    let addr = addr
                        .trim()
                        .parse::<SocketAddr>()
                        .map_err(|e| format!("smp-sim printed `{line}`, not an address: {e}"))?;
                    println!(
                        "{task}: smp-sim (pid {}) listening on {addr}",
                        sim.child.id()
                    );
                    if !serial {
                        return Ok((sim, addr, None));
                    }
                    listening = Some(addr);
                } else if let (Some(addr), Some(port)) = (listening, line.strip_prefix(SIM_SERIAL))
                {
                    let port = port.trim().to_owned();
                    println!("{task}: smp-sim (pid {}) serial on {port}", sim.child.id());
                    return Ok((sim, addr, Some(port)));
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = sim
                    .child
                    .wait()
                    .map_or_else(|e| format!("status unknown: {e}"), |s| s.to_string());
                return Err(format!(
                    "smp-sim ended before it was ready ({status}); the end of its log {}:\n{}",
                    log.display(),
                    tail(log)
                ));
            }
            Err(RecvTimeoutError::Timeout) => {
                let expected = if serial { SIM_SERIAL } else { SIM_READY };
                return Err(format!(
                    "smp-sim did not print `{expected}...` within {}s; the end of its log {}:\n{}",
                    SIM_READY_TIMEOUT.as_secs(),
                    log.display(),
                    tail(log)
                ));
            }
        }
    }
}

/// The last lines of the log at `path`.
pub(crate) fn tail(path: &Path) -> String {
    let log = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..]
        .iter()
        .map(|line| format!("    | {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simulator_that_exits_early_is_an_error_with_its_log() {
        let log = std::env::temp_dir().join(format!("xtask-sim-test-{}.log", std::process::id()));
        let mut command = Command::new("sh");
        command.args(["-c", "echo starting; echo bad flag >&2; exit 2"]);
        let error = start_sim(command, &log, "test").err().unwrap_or_default();
        let _ = fs::remove_file(&log);
        assert!(error.contains("ended before it was ready"), "{error}");
        assert!(error.contains("    | bad flag"), "{error}");
    }

    #[test]
    fn a_simulator_address_is_read_from_its_stdout() {
        let log = std::env::temp_dir().join(format!("xtask-sim-test2-{}.log", std::process::id()));
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "echo smp-sim listening on 127.0.0.1:4242; exec sleep 30",
        ]);
        let addr = start_sim(command, &log, "test").map(|(_guard, addr)| addr);
        let _ = fs::remove_file(&log);
        assert_eq!(addr, Ok(SocketAddr::from(([127, 0, 0, 1], 4242))));
    }

    #[test]
    fn a_serial_simulator_port_is_read_from_its_stdout() {
        let log = std::env::temp_dir().join(format!("xtask-sim-test3-{}.log", std::process::id()));
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "echo smp-sim listening on 127.0.0.1:4242; echo smp-sim serial on /dev/pts/9; exec sleep 30",
        ]);
        let port = start_serial_sim(command, &log, "test").map(|(_guard, _, port)| port);
        let _ = fs::remove_file(&log);
        assert_eq!(port.as_deref(), Ok("/dev/pts/9"));
    }
}
