//! The `smp` binary over a serial line: the simulated device's pseudo-terminal and TCP
//! serial socket, in each framing, with the same commands as over UDP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;

use smp_mcuboot::ImageVersion;
use smp_sim::serial::Framing;
use smp_sim::{SerialConfig, Sim, SimConfig};
use support::sim::{path_str, smp, smp_env, write_image};

fn scratch(test: &str) -> PathBuf {
    support::scratch("smp-cli-serial", test)
}

/// A simulated device shaped like native_sim's `serial` fixture (4 buffers of 384 B,
/// two UART line buffers), its serial port in `framing` on a pty or TCP.
async fn serial_sim(serial: SerialConfig) -> (Sim, String) {
    let config = SimConfig {
        buf_size: 384,
        buf_count: 4,
        ..SimConfig::default()
    };
    let sim = Sim::start_serial(config, serial).await.unwrap();
    let port = sim.serial_target().unwrap().to_string();
    (sim, port)
}

fn framing_arg(framing: Framing) -> &'static str {
    match framing {
        Framing::Console => "console",
        Framing::Raw => "raw",
        _ => "cobs",
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_kind_of_command_works_over_a_serial_line() {
    let dir = scratch("commands");
    for (framing, tcp) in [
        (Framing::Console, false),
        (Framing::Raw, false),
        (Framing::RawCobs, true),
    ] {
        let mut serial = if tcp {
            SerialConfig::tcp("127.0.0.1:0".parse().unwrap())
        } else {
            SerialConfig::pty()
        };
        serial.framing = framing;
        let (sim, port) = serial_sim(serial).await;
        let base = |args: &[&str]| {
            let mut all = vec![
                "--serial".to_owned(),
                port.clone(),
                "--framing".to_owned(),
                framing_arg(framing).to_owned(),
            ];
            all.extend(args.iter().map(|a| (*a).to_owned()));
            all
        };
        let what = format!("{framing:?} on {port}");

        let run = smp(base(&["os", "echo", "hello over serial"])).await;
        assert_eq!(run.ok().trim(), "hello over serial", "{what}");

        let run = smp(base(&["--json", "os", "params"])).await;
        assert_eq!(run.ok_json()["buf_size"], 384, "{what}");

        let (image, hash) = write_image(&dir, ImageVersion::new(2, 0, 0, 0), 30_000);
        let run = smp(base(&["--json", "image", "upload", &path_str(&image)])).await;
        let doc = run.ok_json();
        assert_eq!(doc["matched"], true, "{what}: {doc}");
        let slot = sim.slot(1).unwrap();
        let data = std::fs::read(&image).unwrap();
        assert!(
            slot[..data.len()] == data[..],
            "{what}: slot 1 holds the image"
        );

        let short = hash[..8].to_owned();
        let run = smp(base(&["image", "test", &short])).await;
        run.ok();
        assert_eq!(sim.image_state().images[1].pending, Some(true), "{what}");

        let local = dir.join("file.bin");
        let content: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        std::fs::write(&local, &content).unwrap();
        let run = smp(base(&[
            "fs",
            "upload",
            &path_str(&local),
            "/lfs1/serial.bin",
        ]))
        .await;
        run.ok();
        assert_eq!(sim.file("/lfs1/serial.bin").unwrap(), content, "{what}");
        let back = dir.join("back.bin");
        let run = smp(base(&[
            "fs",
            "download",
            "/lfs1/serial.bin",
            &path_str(&back),
        ]))
        .await;
        run.ok();
        assert_eq!(std::fs::read(&back).unwrap(), content, "{what}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_and_serial_name_one_device() {
    let (_sim, port) = serial_sim(SerialConfig::pty()).await;
    // Both on the command line: a usage error, nothing sent.
    let run = smp(["--udp", "127.0.0.1", "--serial", &port, "os", "echo", "x"]).await;
    assert_eq!(run.status, 2, "{run:#?}");
    assert!(run.stderr.contains("2 devices given"), "{}", run.stderr);
    // SMP_UDP in the environment does not stop --serial on the command line.
    let run = smp_env(
        ["--serial", port.as_str(), "os", "echo", "env"],
        Some("127.0.0.1:9".to_owned()),
    )
    .await;
    assert_eq!(run.ok().trim(), "env");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_port_or_a_silent_device_is_unreachable() {
    let run = smp(["--serial", "/dev/smp-no-such-port", "os", "echo", "x"]).await;
    assert_eq!(run.status, 3, "{run:#?}");
    assert!(
        run.stderr.contains("/dev/smp-no-such-port"),
        "{}",
        run.stderr
    );
    // A device that never answers on its serial port: the hint names serial settings.
    let (sim, port) = serial_sim(SerialConfig::pty()).await;
    sim.go_silent(std::time::Duration::from_secs(30));
    let run = smp([
        "--serial",
        port.as_str(),
        "--timeout",
        "200ms",
        "--retries",
        "1",
        "os",
        "echo",
        "x",
    ])
    .await;
    assert_eq!(run.status, 3, "{run:#?}");
    assert!(run.stderr.contains("--framing"), "{}", run.stderr);
}

/// `--pacing` reaches the line: unpaced, a five-line echo overruns the simulated UART's
/// two line buffers (as native_sim's does) at every attempt; with the default (`auto`:
/// the first attempt goes unpaced and is lost, the second is paced) or `2:20` it gets
/// through; a value that names no pacing is refused before anything is sent.
#[tokio::test(flavor = "multi_thread")]
async fn pacing_is_an_option_that_reaches_the_line() {
    let (sim, port) = serial_sim(SerialConfig::pty()).await;
    let long = "x".repeat(300);
    let echo = |pacing: Option<&str>| {
        let mut args = vec!["--serial", port.as_str()];
        if let Some(pacing) = pacing {
            args.extend(["--pacing", pacing]);
        }
        args.extend(["--timeout", "300ms", "--retries", "1", "os", "echo", &long]);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };

    let run = smp(echo(Some("none"))).await;
    assert_eq!(
        run.status, 3,
        "unpaced, the device never hears it: {run:#?}"
    );
    for pacing in [None, Some("auto"), Some("default"), Some("2:20")] {
        let run = smp(echo(pacing)).await;
        assert_eq!(run.ok().trim(), long, "--pacing {pacing:?}");
    }

    let run = smp(["--serial", &port, "--pacing", "fast", "os", "echo", "hi"]).await;
    assert_eq!(run.status, 2, "{run:#?}");
    assert!(
        run.stderr.contains("pacing \"fast\"") && run.stderr.contains("BURST:MS"),
        "{}",
        run.stderr
    );
    sim.shutdown().await;
}
