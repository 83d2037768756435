//! `cargo xtask demo`: upload firmware to a simulated device with the `smp` tool, the way a
//! newcomer would, on a fresh machine and without hardware.
//!
//! 1. builds `smp` (package `smp-cli`) and `smp-sim` in the dev profile;
//! 2. writes a sample MCUboot image, `target/demo/app-1.2.3.bin`, with the
//!    `sample_image` example of `smp-mcuboot`;
//! 3. starts `smp-sim` on a free port of 127.0.0.1 with flash delays, its logs in
//!    `target/demo/smp-sim.log`, and stops it by its process id at the end, however the
//!    demo ends;
//! 4. runs `smp` against it: `image info`, `image upload`, `image list`, `image test` with
//!    the image's hash, and `image list` again to show the image pending in slot 1.
//!
//! Every step prints its exact command line, relative to the workspace root, so that it
//! can be copied; `smp` runs with the terminal's stdout and stderr, progress bar included.
//! The first failing step ends the demo with an error.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::sim::start_sim;
use crate::util::{self, Result};

/// Version and body size of the sample image.
const VERSION: &str = "1.2.3";
const BODY_SIZE: &str = "262144";
/// Simulated flash timings, so that the upload takes a visible moment.
const SIM_ARGS: [&str; 6] = [
    "--addr",
    "127.0.0.1:0",
    "--write-ms-per-kib",
    "2",
    "--erase-ms",
    "300",
];
/// Steps in the demo, for the `[n/STEPS]` of the headings.
const STEPS: usize = 9;

pub(crate) fn run() -> Result {
    let started = Instant::now();
    let root = util::root();
    let target = util::target_dir();
    let dir = target.join("demo");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    // Paths as the user sees and types them: relative to the workspace root, where every
    // command runs.
    let shown = |path: &Path| path.strip_prefix(&root).unwrap_or(path).to_path_buf();
    let smp = target.join("debug/smp");
    let sim_exe = target.join("debug/smp-sim");
    let image = shown(&dir.join(format!("app-{VERSION}.bin")));
    let image_arg = image.to_string_lossy().into_owned();

    let mut build = util::cargo();
    build.args([
        "build", "-p", "smp-cli", "--bin", "smp", "-p", "smp-sim", "--bin", "smp-sim",
    ]);
    step(1, "build the `smp` tool and the simulated device", &build);
    util::run(&mut build).map_err(|e| failed(1, e))?;

    let mut sample = util::sample_image(&image, VERSION, BODY_SIZE);
    step(2, "write a sample MCUboot image", &sample);
    util::run(&mut sample).map_err(|e| failed(2, e))?;

    let log = dir.join("smp-sim.log");
    let mut start = Command::new(&sim_exe);
    start.args(SIM_ARGS).current_dir(&root);
    util::heading(&format!(
        "demo [3/{STEPS}] start the simulated device (its log: {})",
        shown(&log).display()
    ));
    println!("$ {} {}", shown(&sim_exe).display(), SIM_ARGS.join(" "));
    let (sim, addr) = start_sim(start, &log, "demo").map_err(|e| failed(3, e))?;
    let udp = addr.to_string();
    let with_log = |step: usize, e: String| {
        format!(
            "{}\n  the simulated device's log is {}",
            failed(step, e),
            shown(&log).display()
        )
    };

    let smp_command = |args: &[&str]| {
        let mut command = Command::new(&smp);
        command.args(args).current_dir(&root).stdin(Stdio::null());
        command
    };
    let smp_shown = shown(&smp);
    let show = |command: &Command| {
        let mut line = smp_shown.to_string_lossy().into_owned();
        for arg in command.get_args() {
            line.push(' ');
            line.push_str(&arg.to_string_lossy());
        }
        line
    };
    let run_smp = |number: usize, title: &str, args: &[&str]| -> Result {
        let mut command = smp_command(args);
        let line = show(&command);
        util::heading(&format!("demo [{number}/{STEPS}] {title}"));
        println!("$ {line}");
        util::run(&mut command).map_err(|e| with_log(number, e))
    };

    run_smp(
        4,
        "inspect the image file (no device needed)",
        &["--udp", &udp, "image", "info", &image_arg],
    )?;
    run_smp(
        5,
        "upload it to the device's secondary slot",
        &["--udp", &udp, "image", "upload", &image_arg],
    )?;
    run_smp(
        6,
        "list the device's images",
        &["--udp", &udp, "image", "list"],
    )?;

    let mut info = smp_command(&["--json", "image", "info", &image_arg]);
    util::heading(&format!("demo [7/{STEPS}] read the image's hash"));
    println!("$ {}", show(&info));
    let output = info
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| failed(7, format!("could not start `{}`: {e}", show(&info))))?;
    if !output.status.success() {
        return Err(failed(
            7,
            format!("`{}` failed ({})", show(&info), output.status),
        ));
    }
    let json = String::from_utf8_lossy(&output.stdout);
    let hash = json_hex_string(&json, "hash").ok_or_else(|| {
        failed(
            7,
            format!(
                "`{}` printed no \"hash\" string of hex digits (does the image lack its \
                 SHA256 TLV?); it printed:\n{}",
                show(&info),
                json.trim()
            ),
        )
    })?;
    println!("image hash: {hash}");

    run_smp(
        8,
        "mark the uploaded image for a test boot",
        &["--udp", &udp, "image", "test", hash],
    )?;
    run_smp(
        9,
        "list the images again: slot 1 is now pending",
        &["--udp", &udp, "image", "list"],
    )?;

    drop(sim);
    println!(
        "\ndemo: done in {}. To try more yourself, start the device with\n  {} --addr 127.0.0.1:1337\n\
         and in another terminal run, for example\n  {} --udp 127.0.0.1:1337 image list\n  {} --help",
        util::seconds(started.elapsed()),
        shown(&sim_exe).display(),
        smp_shown.display(),
        smp_shown.display(),
    );
    Ok(())
}

/// Prints the heading of step `number` and the command line it runs.
fn step(number: usize, title: &str, command: &Command) {
    util::heading(&format!("demo [{number}/{STEPS}] {title}"));
    println!("$ {}", util::show(command));
}

fn failed(number: usize, error: String) -> String {
    format!("demo step {number}/{STEPS} failed: {error}")
}

/// The value of the first `"key": "..."` in `json` whose value is a non-empty string of
/// hex digits.
///
/// Not a JSON parser (xtask has no dependencies): it relies on what `smp --json image info`
/// prints, one object whose hash is a lowercase hex string under the key `"hash"`, and on
/// JSON writing a key as `"key"` followed by `:` (other keys such as `"computed_hash"`
/// do not match, as the quote before `hash` is part of the search). A `null` hash, or a
/// key that appears only as a value, gives `None`.
fn json_hex_string<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let quoted = format!("\"{key}\"");
    json.match_indices(&quoted).find_map(|(at, _)| {
        let rest = json[at + quoted.len()..].trim_start();
        let rest = rest.strip_prefix(':')?.trim_start();
        let rest = rest.strip_prefix('"')?;
        let value = &rest[..rest.find('"')?];
        (!value.is_empty() && value.bytes().all(|b| b.is_ascii_hexdigit())).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_hash_of_image_info() {
        let json = r#"{"file":"a.bin","hash":"3fa2b0","computed_hash":"ffff","tlvs":[]}"#;
        assert_eq!(json_hex_string(json, "hash"), Some("3fa2b0"));
        let pretty = "{\n  \"computed_hash\": \"ffff\",\n  \"hash\" : \"00ab\"\n}";
        assert_eq!(json_hex_string(pretty, "hash"), Some("00ab"));
    }

    #[test]
    fn a_missing_null_or_odd_hash_is_none() {
        assert_eq!(json_hex_string(r#"{"computed_hash":"ffff"}"#, "hash"), None);
        assert_eq!(json_hex_string(r#"{"hash":null}"#, "hash"), None);
        assert_eq!(json_hex_string(r#"{"hash":""}"#, "hash"), None);
        assert_eq!(json_hex_string(r#"{"hash":"not hex"}"#, "hash"), None);
        assert_eq!(json_hex_string(r#"{"name":"hash"}"#, "hash"), None);
        assert_eq!(json_hex_string(r#"{"hash":"ab"#, "hash"), None);
    }
}
