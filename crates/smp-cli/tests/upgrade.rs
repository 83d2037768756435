//! `smp upgrade` against simulated devices: one device (upgraded, already running,
//! rolled back), and fleets whose devices end differently, each with its true outcome
//! in the summary and the exit status saying whether all succeeded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use smp_mcuboot::ImageVersion;
use smp_sim::{Delays, Faults, ImageBoot, Sim, SimConfig};
use support::sim::{path_str, smp, write_image};

fn scratch(test: &str) -> PathBuf {
    support::scratch("smp-cli-upgrade", test)
}

/// A device that takes 200 ms to boot after a reset.
async fn device(faults: Faults) -> Sim {
    Sim::start(SimConfig {
        delays: Delays {
            boot: Duration::from_millis(200),
            ..Delays::default()
        },
        faults,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

/// `smp --timeout 300ms ARGS`: short waits for loopback.
async fn smp_fast(args: &[&str]) -> support::Run {
    let mut all = vec!["--timeout", "300ms"];
    all.extend_from_slice(args);
    smp(all.iter().map(|a| (*a).to_owned())).await
}

#[tokio::test(flavor = "multi_thread")]
async fn one_device_upgraded_then_already_running_then_a_rollback() {
    let dir = scratch("one");
    let sim = device(Faults::none()).await;
    let addr = sim.addr().to_string();
    let (image, hash) = write_image(&dir, ImageVersion::new(2, 0, 0, 0), 30_000);
    let image = path_str(&image);

    let run = smp_fast(&["--json", "--udp", &addr, "upgrade", &image]).await;
    assert_eq!(run.status, 0, "{run:#?}");
    let summary: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["devices"][0]["outcome"], "upgraded", "{summary}");
    assert_eq!(summary["image"]["hash"], hash);
    // A JSON line per step came before the summary.
    let events: Vec<Value> = run
        .stdout
        .lines()
        .rev()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "finished" && e["step"] == "confirm")
    );
    let state = sim.image_state();
    assert_eq!(state.images[0].hash.as_ref().unwrap().to_string(), hash);
    assert_eq!(state.images[0].confirmed, Some(true));

    let run = smp_fast(&["--udp", &addr, "upgrade", &image]).await;
    assert_eq!(run.status, 0, "{run:#?}");
    assert!(run.stdout.contains("already running"), "{}", run.stdout);

    // A newer image that crashes before it is confirmed: exit 6.
    sim.set_image_boot(ImageBoot::Crashes);
    let (newer, _) = write_image(&dir, ImageVersion::new(3, 0, 0, 0), 30_000);
    let run = smp_fast(&["--udp", &addr, "upgrade", &path_str(&newer)]).await;
    assert_eq!(run.status, 6, "{run:#?}");
    assert!(run.stdout.contains("rolled back"), "{}", run.stdout);
    assert_eq!(
        sim.image_state().images[0]
            .hash
            .as_ref()
            .unwrap()
            .to_string(),
        hash
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_device_that_never_answers_is_unreachable() {
    let dir = scratch("silent");
    let sim = device(Faults::none()).await;
    sim.go_silent(Duration::from_secs(60));
    let (image, _) = write_image(&dir, ImageVersion::new(2, 0, 0, 0), 10_000);
    let run = smp_fast(&[
        "--retries",
        "1",
        "--udp",
        &sim.addr().to_string(),
        "upgrade",
        &path_str(&image),
    ])
    .await;
    assert_eq!(run.status, 3, "{run:#?}");
    assert!(
        run.stderr.contains("upgrade: device unreachable"),
        "{}",
        run.stderr
    );
}

/// 64 devices, given on the command line and in a device list: most upgrade, four roll
/// back (two crash, two refuse the image), four never answer, eight lose 10% of the
/// datagrams each way. Every device ends with its own outcome; the exit status is that of
/// the first device that failed (unreachable: 3).
#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_of_64_ends_with_each_devices_true_outcome() {
    let dir = scratch("fleet");
    let mut sims = Vec::new();
    let mut expected = Vec::new();
    for index in 0..64u64 {
        let lossy = index % 8 == 5;
        let faults = if lossy {
            Faults {
                seed: index,
                drop_requests: 0.1,
                drop_replies: 0.1,
                ..Faults::none()
            }
        } else {
            Faults::none()
        };
        let sim = device(faults).await;
        let outcome = match index {
            3 | 17 => {
                sim.set_image_boot(ImageBoot::Crashes);
                "rolled back"
            }
            30 | 44 => {
                sim.set_image_boot(ImageBoot::Refused);
                "rolled back"
            }
            9 | 22 | 40 | 63 => {
                sim.go_silent(Duration::from_secs(600));
                "failed"
            }
            _ => "upgraded",
        };
        expected.push(outcome);
        sims.push(sim);
    }
    // The first two on the command line, the rest in a list with names and comments.
    let mut list = String::from("# the rest of the fleet\n");
    for (index, sim) in sims.iter().enumerate().skip(2) {
        list.push_str(&format!("{}  device-{index}  # #{index}\n", sim.addr()));
    }
    let list_path = dir.join("devices.txt");
    std::fs::write(&list_path, list).unwrap();
    let (image, hash) = write_image(&dir, ImageVersion::new(2, 1, 0, 0), 20_000);
    let run = smp_fast(&[
        "--json",
        "--retries",
        "6",
        "--udp",
        &sims[0].addr().to_string(),
        "--udp",
        &sims[1].addr().to_string(),
        "upgrade",
        &path_str(&image),
        "--devices",
        &path_str(&list_path),
        "--reset-timeout",
        "5s",
        "--parallel",
        "64",
    ])
    .await;
    let summary: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    let devices = summary["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 64);
    for (index, (device, want)) in devices.iter().zip(&expected).enumerate() {
        assert_eq!(device["outcome"], *want, "device {index}: {device}");
        if index >= 2 {
            assert_eq!(device["device"], format!("device-{index}"));
        }
        let running = sims[index].image_state().images[0]
            .hash
            .as_ref()
            .unwrap()
            .to_string();
        assert_eq!(running == hash, *want == "upgraded", "device {index}");
    }
    assert_eq!(summary["summary"]["upgraded"], 56, "{summary}");
    assert_eq!(summary["summary"]["rolled back"], 4);
    assert_eq!(summary["summary"]["failed"], 4);
    assert_eq!(run.status, 3, "{}", run.stderr);
}

/// Over a serial port that vanishes while the device resets (USB re-enumerating; here
/// the simulated device's TCP serial port closing every connection at the reset), `smp
/// upgrade` opens the port again while it waits, and the device ends confirmed.
#[tokio::test(flavor = "multi_thread")]
async fn a_serial_port_that_vanishes_at_the_reset_is_opened_again() {
    let dir = scratch("vanishes");
    let serial = smp_sim::SerialConfig {
        vanishes_on_reset: true,
        rx_line_buffers: None,
        ..smp_sim::SerialConfig::tcp(([127, 0, 0, 1], 0).into())
    };
    let config = SimConfig {
        delays: Delays {
            boot: Duration::from_millis(200),
            ..Delays::default()
        },
        ..SimConfig::default()
    };
    let sim = Sim::start_serial(config, serial).await.unwrap();
    let port = sim.serial_target().unwrap().to_string();
    let (image, hash) = write_image(&dir, ImageVersion::new(2, 1, 0, 0), 20_000);

    let run = smp_fast(&["--json", "--serial", &port, "upgrade", &path_str(&image)]).await;
    assert_eq!(run.status, 0, "{run:#?}");
    let summary: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["devices"][0]["outcome"], "upgraded", "{summary}");
    let state = sim.image_state();
    assert_eq!(state.images[0].hash.as_ref().unwrap().to_string(), hash);
    assert_eq!(state.images[0].confirmed, Some(true));
}
