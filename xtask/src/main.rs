//! Developer tasks of the smp workspace, run as `cargo xtask <task>`.
//!
//! - `demo`: builds the `smp` tool and the simulated device, and uploads a sample image to
//!   the device with `smp`, each command shown so that it can be copied.
//! - `ci`: everything CI checks, in order, stopping at the first failure.
//! - `examples`: runs every example of `crates/smp-client/examples/` against the
//!   simulated device.
//! - `fuzz [--seconds N] [TARGET...]`: runs the cargo-fuzz targets of `fuzz/` on the
//!   nightly toolchain and reports the executions of each.
//! - `interop [FILTER]`: sets up the real Zephyr SMP servers from the `smpclient` sdist and
//!   the Python reference tools, and runs the interop tests of every suite against each
//!   server and serial fixture, one at a time, and the tests against the simulated device.
//! - `bench [--quick] [--only loss|serial|fleet-upgrade]`: measures our client against
//!   the Python reference on the simulated device (and, for serial, on emulated fixtures)
//!   and writes `BENCHMARKS.md` (`--only SECTION`: that section alone, into
//!   `target/bench/SECTION.md`).
//!
//! Standard library only: the tools it drives (cargo, apt-get, pip, tar, sha256sum) do the
//! heavy lifting, and xtask itself should build in seconds on a fresh machine.

mod bench;
mod ci;
mod demo;
mod examples;
mod fixtures;
mod fuzz;
mod gdb;
mod interop;
mod json;
mod sim;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task> [options]

tasks:
  demo
      builds the `smp` tool and the simulated device (smp-sim), writes a sample MCUboot
      image to target/demo/, starts smp-sim on a free port of 127.0.0.1 (log:
      target/demo/smp-sim.log), then with `smp`: image info, upload, list, test, list.
      Every command is shown so that you can copy it. Needs no hardware.
  examples
      builds the smp-client examples and smp-sim, writes a sample image, starts smp-sim
      on a free port of 127.0.0.1 and runs every example against it (echo, upload_image,
      image_state list/test/confirm, custom_group); fails if one fails or is not run.
  ci [--no-tests] [--no-interop] [--skip-deny] [--no-fuzz]
      fmt --check, clippy -D warnings, doc -D warnings, the workspace tests, the
      examples against smp-sim, the no_std build of smp-header and smp-proto, smp-client without default features, a check with the
      toolchain of the declared rust-version, the file list of every publishable crate's
      package (README and license included), cargo deny, 20 s of each fuzz target, then the
      interop suite; stops at the first failure. The workspace's cargo commands run with
      --locked.
      --no-tests leaves out `cargo test --workspace`: .ci/run passes it because it has
      just run the tests as the README's test command. The other options only shorten
      a local run.
  fuzz [--seconds N] [TARGET...]
      runs each fuzz target of fuzz/ (header_decode, reply_decode, reassembler,
      client_replies, serial_deframer; all unless named) for N seconds (default 60) with
      `cargo +nightly fuzz run`, starting from the seed corpus in fuzz/corpus/ and keeping
      what it finds in fuzz/target/corpus/. Installs the nightly toolchain (rustup) and
      cargo-fuzz (cargo install --locked) when missing. Prints the executions and exec/s
      of each target; fails if one crashes (the input is under fuzz/artifacts/).
  interop [FILTER]
      installs what the Zephyr servers need (32-bit libc and qemu-system-arm, as root via
      apt-get), downloads the smpclient 7.3.0 sdist into target/interop/ and sets up a
      venv with the Python reference (smp, smpclient) and imgtool 2.5.0. Then starts each
      UDP server (udp4, udp6) in turn and runs its tests (zephyr_udp4_*, zephyr_udp6_*)
      from every suite (smp-integration-tests --test interop and --test interop_serial,
      smp-cli --test interop) against it, the sim_* tests, which start the simulated
      device themselves, and the serial_* tests against every serial fixture of the
      sdist's manifest (native_sim on a pty, mps2_an385 and qemu_cortex_m0 under qemu on
      a TCP port), each where the fixture has what the test needs. Prints a table of
      every server and fixture. FILTER keeps only test names containing it.
  bench [--quick] [--only loss|serial|fleet-upgrade]
      builds smp-bench, smp-sim and smp in release and measures, against the simulated device
      on 127.0.0.1: upload throughput of a 1 MiB image and download throughput of a
      256 KiB file (RTT 0/5/20 ms x buf_count 2/4/8), ours and the Python reference
      alternating; echo round trips against a raw UDP floor; a fleet of 1, 16 and 64
      devices; a 256 KiB upload and download at 20 ms RTT with 1/5/10% loss each way
      (buf_count 2/8) against the lossless ones; image uploads over serial (smp-sim on
      a pty, and the sdist's emulated MCUboot serial recovery and qemu_cortex_m0
      fixtures, set up as for interop), ours with and without pacing against the
      reference; a whole upgrade (Client::upgrade, and smp upgrade) of 1, 16, 64 and
      256 devices at once at 20 ms RTT; the codec micro-benchmarks and allocations per
      upload chunk; the fault matrix. Writes BENCHMARKS.md. About 30 minutes; --quick:
      1 run each and smaller samples. --only loss, serial or fleet-upgrade: that section
      alone, written to target/bench/SECTION.md (BENCHMARKS.md left as it is).
  help
      this text";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => match &args[1..] {
            [] => demo::run(),
            other => Err(format!("demo takes no arguments, got {other:?}")),
        },
        Some("examples") => match &args[1..] {
            [] => examples::run(),
            other => Err(format!("examples takes no arguments, got {other:?}")),
        },
        Some("ci") => ci::Options::parse(&args[1..]).and_then(ci::run),
        Some("fuzz") => fuzz::Options::parse(&args[1..]).and_then(fuzz::run),
        Some("bench") => bench::Options::parse(&args[1..]).and_then(bench::run),
        Some("interop") => match &args[1..] {
            [] => interop::run(None),
            [filter] if !filter.starts_with('-') => interop::run(Some(filter)),
            other => Err(format!("interop takes at most one FILTER, got {other:?}")),
        },
        Some("help" | "-h" | "--help") | None => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown task `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\nxtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}
