//! `Client::upgrade` against the simulated device over real loopback sockets: a normal
//! upgrade, an image already running, a device that rolls back (the image refused at
//! boot, or crashing before it is confirmed), a device that never comes back, a lost
//! reset and a lost reset reply, and an upgrade interrupted at each step and run again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use smp_client::proto::ImageHash;
use smp_client::upgrade::{UpgradeEvent, UpgradeStep};
use smp_client::{
    Client, ClientError, RetryPolicy, UpgradeError, UpgradeOptions, UpgradeOutcome, UpgradeReport,
};
use smp_integration_tests::{init_tracing, quick_upload_options, sim_client, test_image};
use smp_mcuboot::Image;
use smp_sim::{Delays, Faults, ImageBoot, Sim, SimConfig};

/// Boot time of the simulated device: long enough that the client must wait for it.
const BOOT: Duration = Duration::from_millis(300);

fn policy() -> RetryPolicy {
    RetryPolicy::default()
        .with_timeout(Duration::from_millis(200))
        .with_retries(3)
}

fn options() -> UpgradeOptions {
    UpgradeOptions::default()
        .with_upload(quick_upload_options(Duration::from_millis(400)))
        .with_reset_timeout(Duration::from_secs(10))
        .with_poll_timeout(Duration::from_millis(250))
}

async fn sim() -> Sim {
    Sim::start(SimConfig {
        delays: Delays {
            boot: BOOT,
            ..Delays::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn hash_of(image: &[u8]) -> ImageHash {
    Image::parse(image).unwrap().hash().unwrap().into()
}

/// The image in slot 0 and whether it is confirmed.
fn running(sim: &Sim) -> (Option<ImageHash>, Option<bool>) {
    let state = sim.image_state();
    let slot0 = state.images.iter().find(|i| i.slot == 0).expect("slot 0");
    (slot0.hash.clone(), slot0.confirmed)
}

async fn upgrade(
    client: &Client<smp_client::udp::UdpTransport>,
    image: &[u8],
) -> Result<UpgradeReport, ClientError> {
    client.upgrade(image, &options(), |_| {}).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_uploads_tests_resets_and_confirms() {
    init_tracing();
    let sim = sim().await;
    let factory = running(&sim).0;
    let client = sim_client(&sim, policy()).await;
    let image = test_image(40_000, 1, "2.0.0");
    let mut steps = Vec::new();
    let report = client
        .upgrade(&image, &options(), |event| {
            if let UpgradeEvent::Finished { step, .. } = event {
                steps.push(step);
            }
        })
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        UpgradeOutcome::Running {
            confirmed: true,
            previous: factory
        }
    );
    assert_eq!(
        steps,
        [
            UpgradeStep::Inspect,
            UpgradeStep::Upload,
            UpgradeStep::Mark,
            UpgradeStep::Reset,
            UpgradeStep::Wait,
            UpgradeStep::Confirm
        ]
    );
    assert_eq!(report.resets, 1);
    assert!(
        report
            .steps
            .iter()
            .map(|(s, _)| *s)
            .eq(steps.iter().copied())
    );
    assert_eq!(report.version, "2.0.0");
    assert_eq!(running(&sim), (Some(hash_of(&image)), Some(true)));
    // Confirmed for good: a later reset keeps it.
    sim.reboot();
    assert_eq!(running(&sim), (Some(hash_of(&image)), Some(true)));
    // Past its boot time (it is deaf meanwhile), so that every request below is heard.
    tokio::time::sleep(BOOT * 2).await;

    // Again: already running, nothing sent but the state read.
    let processed = sim.counters().processed;
    let again = upgrade(&client, &image).await.unwrap();
    assert!(again.already_running(), "{again:?}");
    assert_eq!(sim.counters().processed, processed + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_refused_or_crashing_at_boot_is_a_rollback() {
    init_tracing();
    for boot in [ImageBoot::Refused, ImageBoot::Crashes] {
        let sim = sim().await;
        let factory = running(&sim).0;
        sim.set_image_boot(boot);
        let client = sim_client(&sim, policy()).await;
        let image = test_image(30_000, 2, "2.1.0");
        let report = upgrade(&client, &image).await.unwrap();
        assert_eq!(
            report.outcome,
            UpgradeOutcome::RolledBack {
                running: factory.clone()
            },
            "{boot:?}"
        );
        assert_eq!(running(&sim), (factory, Some(true)), "{boot:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_never_comes_back_is_an_error_after_the_reset_timeout() {
    init_tracing();
    let sim = Sim::start(SimConfig {
        delays: Delays {
            boot: Duration::from_secs(30),
            ..Delays::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let client = sim_client(&sim, policy()).await;
    let image = test_image(20_000, 3, "2.2.0");
    let options = options().with_reset_timeout(Duration::from_secs(2));
    let err = client.upgrade(&image, &options, |_| {}).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Upgrade(UpgradeError::NeverCameBack { waited }) if waited == Duration::from_secs(2)
        ),
        "{err:?}"
    );
}

/// A reset lost on the way is sent again once the device answers, still waiting to boot
/// the image; a reset whose reply is lost is not sent again (a second reset would revert
/// the image under test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reset_or_reset_reply() {
    init_tracing();
    for lose_reply in [false, true] {
        let sim = Arc::new(sim().await);
        let client = sim_client(&sim, policy()).await;
        let image = test_image(20_000, 4, "2.3.0");
        let device = sim.clone();
        let mut first_reset = true;
        let report = client
            .upgrade(&image, &options(), move |event| match event {
                UpgradeEvent::Started(UpgradeStep::Reset) if first_reset => {
                    first_reset = false;
                    if lose_reply {
                        device.set_faults(Faults {
                            drop_replies: 1.0,
                            ..Faults::none()
                        });
                    } else {
                        device.go_silent(Duration::from_millis(500));
                    }
                }
                UpgradeEvent::Finished {
                    step: UpgradeStep::Reset,
                    ..
                } => device.set_faults(Faults::none()),
                _ => {}
            })
            .await
            .unwrap();
        assert!(
            matches!(
                report.outcome,
                UpgradeOutcome::Running {
                    confirmed: true,
                    ..
                }
            ),
            "lose_reply {lose_reply}: {report:?}"
        );
        assert_eq!(report.resets, if lose_reply { 1 } else { 2 });
        assert_eq!(running(&sim), (Some(hash_of(&image)), Some(true)));
    }
}

/// Dropped at the start of each step (half-way through the upload for the upload), then
/// run again: the second run continues from the device's state and ends with the image
/// running, confirmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_interrupted_at_any_step_continues() {
    init_tracing();
    for stop_at in [
        UpgradeStep::Upload,
        UpgradeStep::Mark,
        UpgradeStep::Reset,
        UpgradeStep::Wait,
        UpgradeStep::Confirm,
    ] {
        let sim = sim().await;
        let client = sim_client(&sim, policy()).await;
        let image = test_image(60_000, 5, "2.4.0");
        let stop = Arc::new(tokio::sync::Notify::new());
        let seen = Arc::new(Mutex::new(false));
        let (notify, flag) = (stop.clone(), seen.clone());
        let options = options();
        let first = client.upgrade(&image, &options, move |event| {
            let now = match event {
                UpgradeEvent::Upload(p) => stop_at == UpgradeStep::Upload && p.done * 2 >= p.total,
                UpgradeEvent::Started(step) => step == stop_at && step != UpgradeStep::Upload,
                _ => false,
            };
            if now && !*flag.lock().unwrap() {
                *flag.lock().unwrap() = true;
                notify.notify_one();
            }
        });
        tokio::select! {
            result = first => panic!("{stop_at:?}: ended before it was stopped: {result:?}"),
            () = stop.notified() => {}
        }
        assert!(*seen.lock().unwrap());
        let report = upgrade(&client, &image).await.unwrap();
        assert!(
            matches!(
                report.outcome,
                UpgradeOutcome::Running {
                    confirmed: true,
                    ..
                }
            ),
            "{stop_at:?}: {report:?}"
        );
        assert_eq!(
            running(&sim),
            (Some(hash_of(&image)), Some(true)),
            "{stop_at:?}"
        );
    }
}

#[tokio::test]
async fn a_pending_image_or_a_file_that_is_not_an_image_stops_it() {
    init_tracing();
    let sim = sim().await;
    let client = sim_client(&sim, policy()).await;
    let other = test_image(10_000, 6, "3.0.0");
    client
        .upload_image(&other, &options().upload, |_| {})
        .await
        .unwrap();
    client.test_image(&hash_of(&other)).await.unwrap();
    let image = test_image(10_000, 7, "3.1.0");
    let err = upgrade(&client, &image).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Upgrade(UpgradeError::OtherImagePending { hash: Some(h) }) if *h == hash_of(&other)),
        "{err:?}"
    );
    let err = upgrade(&client, b"not an image").await.unwrap_err();
    assert!(
        matches!(err, ClientError::Upgrade(UpgradeError::NotAnImage(_))),
        "{err:?}"
    );
}

/// A serial port that vanishes while the device resets (a USB CDC ACM device
/// re-enumerating; here the simulated device's TCP serial port closing every connection
/// at the reset) is opened again while the upgrade waits, and the upgrade ends with the
/// new image confirmed. A client that cannot reopen its port never hears the device
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serial_port_that_vanishes_at_the_reset_is_opened_again() {
    init_tracing();
    for reopens in [true, false] {
        let config = SimConfig {
            delays: Delays {
                boot: BOOT,
                ..Delays::default()
            },
            ..SimConfig::default()
        };
        let serial = smp_sim::SerialConfig {
            vanishes_on_reset: true,
            rx_line_buffers: None,
            ..smp_sim::SerialConfig::tcp(([127, 0, 0, 1], 0).into())
        };
        let sim = Sim::start_serial(config, serial).await.unwrap();
        let target = sim.serial_target().unwrap();
        let client_options = smp_client::ClientOptions::default().with_retry(policy());
        let client = if reopens {
            Client::connect_serial(target, client_options)
                .await
                .unwrap()
        } else {
            let transport = smp_client::serial::SerialTransport::connect(target, policy().timeout)
                .await
                .unwrap();
            Client::new(transport, client_options).await.unwrap()
        };
        let image = test_image(20_000, 5, "2.3.0");
        let options = options().with_reset_timeout(Duration::from_secs(3));
        let result = client.upgrade(&image, &options, |_| {}).await;
        if reopens {
            let report = result.unwrap();
            assert!(
                matches!(
                    report.outcome,
                    UpgradeOutcome::Running {
                        confirmed: true,
                        ..
                    }
                ),
                "{report:?}"
            );
            assert_eq!(running(&sim), (Some(hash_of(&image)), Some(true)));
        } else {
            let err = result.unwrap_err();
            assert!(
                matches!(
                    err,
                    ClientError::Upgrade(UpgradeError::NeverCameBack { .. })
                ),
                "{err:?}"
            );
            // The device did boot the image; nobody confirmed it.
            assert_eq!(running(&sim), (Some(hash_of(&image)), Some(false)));
        }
    }
}
