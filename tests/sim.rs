//! The client against the simulated device over real loopback sockets: image uploads
//! that survive lost, duplicated and reordered datagrams, and interrupted uploads that
//! resume.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use smp_client::messages::os::{EchoRequest, ResetRequest};
use smp_client::{ClientError, FileTransferOptions, ImageUploadOptions, RetryPolicy};
use smp_integration_tests::{
    init_tracing, lossy_policy, quick_upload_options, sim_client, test_image,
};
use smp_mcuboot::Image;
use smp_sim::{Faults, Silence, Sim, SimConfig};

fn upload_options() -> ImageUploadOptions {
    quick_upload_options(Duration::from_millis(400))
}

/// The slot holds exactly the image, and the device reports its version and hash.
fn assert_uploaded(sim: &Sim, image: &[u8]) {
    let slot = sim.slot(1).unwrap();
    assert!(
        slot[..image.len()] == *image,
        "slot 1 differs from the image"
    );
    let parsed = Image::parse(image).unwrap();
    let state = sim.image_state();
    let secondary = state
        .images
        .iter()
        .find(|i| i.slot == 1)
        .expect("slot 1 is listed");
    assert_eq!(secondary.version, parsed.header.version.to_string());
    assert_eq!(
        secondary.hash.as_deref(),
        parsed.hash().as_ref().map(|h| &h[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mib_upload_survives_loss_duplication_and_reordering() {
    init_tracing();
    let faults = Faults {
        seed: 0x5eed_0001,
        drop_requests: 0.10,
        drop_replies: 0.10,
        duplicate_requests: 0.05,
        duplicate_replies: 0.05,
        reorder_replies: 0.05,
        ..Faults::none()
    };
    let sim = Sim::start(SimConfig {
        faults,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let client = sim_client(&sim, lossy_policy()).await;
    let image = test_image(1 << 20, 1, "2.3.4");
    let summary = client
        .upload_image(&image, &upload_options(), |_| {})
        .await
        .expect("the upload completes despite the faults");
    assert_eq!(summary.len, image.len() as u64);
    assert_eq!(summary.matched, Some(true));
    assert_uploaded(&sim, &image);
    let counters = sim.counters();
    println!("1 MiB upload through faults: {summary:?}\n  device side: {counters:?}");
    assert!(
        counters.dropped_by_fault > 50 && counters.replies_dropped > 50,
        "the faults happened: {counters:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_upload_resumes_where_the_device_stopped() {
    init_tracing();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let client = sim_client(&sim, RetryPolicy::default()).await;
    let image = test_image(300_000, 2, "1.1.0");
    // Cancel the upload once the device holds about half of it.
    let half = image.len() as u64 / 2;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let mut stop_tx = Some(stop_tx);
    let options = upload_options();
    let interrupted = tokio::select! {
        result = client.upload_image(&image, &options, |p| {
            if p.done >= half {
                if let Some(tx) = stop_tx.take() {
                    let _ = tx.send(());
                }
            }
        }) => Some(result),
        _ = stop_rx => None,
    };
    assert!(interrupted.is_none(), "the upload was cancelled half-way");
    let (at, len) = sim.upload_progress().expect("the device keeps the upload");
    assert!(at >= half && at < len, "device stopped at {at} of {len}");

    let summary = client
        .upload_image(&image, &upload_options(), |_| {})
        .await
        .unwrap();
    assert!(
        summary.resumed_at >= half,
        "resumed at {} instead of at least {half}",
        summary.resumed_at
    );
    assert_eq!(summary.matched, Some(true));
    assert_uploaded(&sim, &image);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_after_a_reboot_starts_again_and_completes() {
    init_tracing();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let client = sim_client(&sim, RetryPolicy::default()).await;
    let image = test_image(200_000, 3, "1.2.0");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let mut stop_tx = Some(stop_tx);
    let options = upload_options();
    tokio::select! {
        _ = client.upload_image(&image, &options, |p| {
            if p.done >= 100_000 {
                if let Some(tx) = stop_tx.take() {
                    let _ = tx.send(());
                }
            }
        }) => panic!("the upload should have been cancelled"),
        _ = stop_rx => {}
    }
    sim.reboot();
    assert_eq!(sim.upload_progress(), None, "a reboot loses the upload");
    let summary = client
        .upload_image(&image, &upload_options(), |_| {})
        .await
        .unwrap();
    assert_eq!(summary.resumed_at, 0);
    assert_uploaded(&sim, &image);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_boot_and_confirm_through_the_client() {
    use smp_client::messages::image::{SetStateRequest, StateRequest};
    init_tracing();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let client = sim_client(&sim, RetryPolicy::default()).await;
    let image = test_image(50_000, 4, "3.0.0");
    client
        .upload_image(&image, &upload_options(), |_| {})
        .await
        .unwrap();
    let hash = Image::parse(&image).unwrap().hash().unwrap().to_vec();
    let state = client
        .request(&SetStateRequest {
            hash: Some(hash.clone().into()),
            confirm: false,
        })
        .await
        .unwrap();
    let secondary = state.images.iter().find(|i| i.slot == 1).unwrap();
    assert_eq!(secondary.pending, Some(true));
    client.request(&ResetRequest::default()).await.unwrap();
    // The reset runs after the reply is sent: wait until the device answers again.
    let mut running = None;
    for _ in 0..50 {
        let state = client.request(&StateRequest).await.unwrap();
        let primary = state.images.iter().find(|i| i.slot == 0).unwrap().clone();
        if primary.hash.as_deref() == Some(&hash[..]) {
            running = Some(primary);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let running = running.expect("the tested image runs after the reset");
    assert_eq!(
        (running.active, running.confirmed),
        (Some(true), Some(false))
    );
    let state = client
        .request(&SetStateRequest {
            hash: None,
            confirm: true,
        })
        .await
        .unwrap();
    assert_eq!(state.images[0].confirmed, Some(true));
    let echo = client
        .request(&EchoRequest {
            d: "still here".into(),
        })
        .await
        .unwrap();
    assert_eq!(echo.r, "still here");
}

/// The client's shortcuts against the simulated device: image state, test, reset (which
/// swaps the tested image in), confirm, the parameters read on connect, OS info.
#[tokio::test]
async fn the_clients_shortcuts_test_and_confirm_an_image() {
    init_tracing();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let client = sim_client(&sim, RetryPolicy::default()).await;

    let params = client.params().expect("read on connect");
    assert_eq!(
        (params.buf_size, params.buf_count),
        (
            SimConfig::default().buf_size as u32,
            SimConfig::default().buf_count as u32
        )
    );
    let processed = sim.counters().processed;
    assert_eq!(client.params(), Some(params));
    assert_eq!(
        sim.counters().processed,
        processed,
        "params() sends nothing"
    );

    let image = test_image(20_000, 9, "1.2.3");
    client
        .upload_image(&image, &upload_options(), |_| {})
        .await
        .unwrap();
    let hash: smp_client::proto::ImageHash = Image::parse(&image).unwrap().hash().unwrap().into();
    let before = client.image_state().await.unwrap();
    let uploaded = before.iter().find(|i| i.slot == 1).expect("slot 1");
    assert_eq!(uploaded.hash.as_ref(), Some(&hash));
    assert_eq!(uploaded.pending, Some(false));

    let marked = client.test_image(&hash).await.unwrap();
    let uploaded = marked.iter().find(|i| i.slot == 1).expect("slot 1");
    assert_eq!(uploaded.pending, Some(true));

    // The device answers, then reboots (before it takes another request) and swaps the
    // tested image into slot 0.
    client.reset().await.unwrap();
    let swapped = client.image_state().await.unwrap();
    let running = swapped.iter().find(|i| i.slot == 0).expect("slot 0");
    assert_eq!(running.hash.as_ref(), Some(&hash));
    assert_eq!(running.confirmed, Some(false));

    let confirmed = client.confirm_image(None).await.unwrap();
    let running = confirmed.iter().find(|i| i.slot == 0).expect("slot 0");
    assert_eq!(
        (running.active, running.confirmed),
        (Some(true), Some(true))
    );

    assert!(!client.os_info(Some("a")).await.unwrap().is_empty());
}

/// The simulated device keeps an upload's file between chunks as Zephyr 4.4.0 does (the
/// same checks run against the real servers: `zephyr_udp4_file_upload_state_between_chunks`,
/// `serial_fs_upload_state_between_chunks`), and then does not show a file the device
/// leaves open until it closes it by itself, after 4 idle seconds.
#[tokio::test(start_paused = true)]
async fn the_file_system_keeps_an_uploads_file_open_as_zephyr_does() {
    init_tracing();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let client = sim_client(&sim, RetryPolicy::default()).await;
    smp_integration_tests::zephyr_sample::fs_upload_state(&client, "/lfs1/state.bin").await;

    // Left open after a refusal: only the idle close shows the rest.
    let name = "/lfs1/idle.bin";
    let first = smp_client::messages::fs::UploadRequest {
        len: Some(400),
        off: 0,
        data: vec![1; 200].into(),
        name: name.into(),
    };
    let wrong = smp_client::messages::fs::UploadRequest {
        len: None,
        off: 300,
        ..first.clone()
    };
    let rest = smp_client::messages::fs::UploadRequest {
        len: None,
        off: 200,
        data: vec![2; 200].into(),
        name: name.into(),
    };
    assert_eq!(client.request(&first).await.unwrap().off, 200);
    assert!(client.request(&wrong).await.is_err());
    assert_eq!(client.request(&rest).await.unwrap().off, 400);
    assert_eq!(sim.file(name).map(|f| f.len()), Some(200));
    tokio::time::sleep(Duration::from_millis(3900)).await;
    assert_eq!(sim.file(name).map(|f| f.len()), Some(200));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sim.file(name).map(|f| f.len()), Some(400));
}

/// `retries` bounds each request's attempts, and a lone request that runs out of them
/// fails; a transfer outlives a chunk that runs out while the device still takes data
/// (a silence longer than one request's budget, shorter than two), and gives up when a
/// request runs out twice with nothing taken in between (a device that stays silent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_outlives_one_chunk_that_runs_out_of_attempts() {
    init_tracing();
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let timeout = Duration::from_millis(100);
    let policy = RetryPolicy::default()
        .with_timeout(timeout)
        .with_retries(1)
        .with_backoff(Duration::from_millis(5))
        .with_max_backoff(Duration::from_millis(5));
    // About 205 ms: the first attempt, the backoff, the last attempt.
    let budget = policy.budget(timeout);
    let silence = budget + timeout / 2;
    let client = sim_client(&sim, policy).await;
    let options = quick_upload_options(timeout);
    // The device goes silent for `duration` after the next `after` requests.
    let silent_after = |after: u64, duration: Duration| {
        sim.set_faults(Faults {
            silence: Some(Silence {
                after_requests: after,
                duration,
            }),
            ..Faults::none()
        });
    };

    // Half-way through the upload (about 70 chunks).
    let image = test_image(96 * 1024, 0x5113, "1.0.0");
    silent_after(35, silence);
    client.upload_image(&image, &options, |_| {}).await.unwrap();
    assert!(
        sim.counters().dropped_by_fault > 0,
        "the device went silent"
    );
    assert_uploaded(&sim, &image);

    // The same silence fails a lone request.
    sim.set_faults(Faults::none());
    sim.go_silent(silence);
    let lone = client.echo("alone").await;
    assert!(
        matches!(lone, Err(ClientError::Timeout { attempts: 2, .. })),
        "{lone:?}"
    );
    tokio::time::sleep(silence).await;

    // Early in a file download (about 130 requests).
    let file = smp_mcuboot::sample_body(256 * 1024, 0xd0);
    client
        .upload_file(
            "/lfs1/persist.bin",
            &file,
            &FileTransferOptions::default(),
            |_| {},
        )
        .await
        .unwrap();
    let silenced = sim.counters().dropped_by_fault;
    silent_after(20, silence);
    let (back, _) = client
        .download_file("/lfs1/persist.bin", &FileTransferOptions::default(), |_| {})
        .await
        .unwrap();
    assert!(
        sim.counters().dropped_by_fault > silenced,
        "the device went silent"
    );
    assert!(back == file, "the downloaded file differs");

    // Silent for good half-way: two rounds of attempts after the last progress (one
    // without the rule), then the upload gives up.
    let other = test_image(96 * 1024, 0x5114, "1.0.1");
    silent_after(35, Duration::from_secs(30));
    let mut last_progress = tokio::time::Instant::now();
    let gone = client
        .upload_image(&other, &options, |_| {
            last_progress = tokio::time::Instant::now();
        })
        .await;
    assert!(
        matches!(gone, Err(ClientError::Timeout { attempts: 2, .. })),
        "{gone:?}"
    );
    // Requests in flight at the last progress were sent a little before it.
    let waited = last_progress.elapsed();
    assert!(
        waited > budget * 3 / 2,
        "gave up {waited:?} after the last progress"
    );
}
