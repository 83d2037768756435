//! Small helpers shared by the tasks: paths, headings, running commands.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Errors are messages for a person: what failed and what to do about it.
pub(crate) type Result<T = ()> = std::result::Result<T, String>;

/// The workspace root (the parent of `xtask/`), whatever the current directory is.
pub(crate) fn root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` if set, else `<root>/target`.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root().join(dir),
        _ => root().join("target"),
    }
}

/// A `cargo` command run from the workspace root, with the cargo that runs xtask.
pub(crate) fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    command
}

/// `cargo +TOOLCHAIN` through rustup's `cargo` proxy, run from the workspace root,
/// without the variables the `cargo xtask` run set for its own toolchain (which would
/// otherwise win over `+TOOLCHAIN`).
pub(crate) fn toolchain_cargo(toolchain: &str) -> Command {
    let mut command = Command::new("cargo");
    command
        .arg(format!("+{toolchain}"))
        .current_dir(root())
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC");
    command
}

/// Prints a step heading so that a long log shows where each step starts.
pub(crate) fn heading(text: &str) {
    println!("\n==> {text}");
}

/// Runs `command` with inherited stdio and fails unless it exits successfully.
pub(crate) fn run(command: &mut Command) -> Result {
    let shown = show(command);
    let status = command
        .status()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}

/// `cargo run -q -p smp-mcuboot --example sample_image -- OUT VERSION BODY_SIZE`: writes a
/// sample MCUboot image (add `--release` to the command's first arguments for speed).
pub(crate) fn sample_image(out: &Path, version: &str, body_size: &str) -> Command {
    let mut command = cargo();
    command
        .args([
            "run",
            "-q",
            "-p",
            "smp-mcuboot",
            "--example",
            "sample_image",
            "--",
        ])
        .arg(out)
        .args([version, body_size]);
    command
}

/// Runs `command` and returns its stdout; fails with its stderr unless it succeeds.
pub(crate) fn capture(command: &mut Command) -> Result<String> {
    let shown = show(command);
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{shown}` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `command` and reports only whether it exited successfully, its output discarded.
pub(crate) fn succeeds(command: &mut Command) -> bool {
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A command line as a person would type it, for messages.
pub(crate) fn show(command: &Command) -> String {
    let mut line = String::new();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            line.push_str(&format!(
                "{}={} ",
                key.to_string_lossy(),
                value.to_string_lossy()
            ));
        }
    }
    let program = command.get_program();
    if std::env::var_os("CARGO").is_some_and(|cargo| cargo == program) {
        line.push_str("cargo");
    } else {
        line.push_str(&program.to_string_lossy());
    }
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// `12.3s` or `2m05s`.
pub(crate) fn seconds(elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = elapsed.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}
