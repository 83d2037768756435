//! Pipelined uploads against the simulated device over real loopback sockets: several
//! chunks in flight, never more than the device's buffers hold, and byte-identical
//! results under lost, duplicated and reordered datagrams.
//!
//! Nothing here measures speed: what is checked is what the device ends up holding,
//! what it had to drop, and how many chunks the client kept in flight.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroUsize;
use std::time::Duration;

use smp_client::{FileTransferOptions, ImageUploadOptions, RetryPolicy, UploadSummary};
use smp_integration_tests::{
    init_tracing, lossy_policy, quick_upload_options, sim_client, test_image,
};
use smp_sim::{Delays, Faults, MOUNT_POINT, Sim, SimConfig};

/// Seeds of the fault generator the lossy uploads run with.
const SEEDS: [u64; 6] = [1, 2, 3, 0x5eed, 0xfeed_f00d, 0x0123_4567_89ab];

/// 10 % of requests and replies lost, 5 % duplicated, 5 % of replies reordered.
fn faults(seed: u64) -> Faults {
    Faults {
        seed,
        drop_requests: 0.10,
        drop_replies: 0.10,
        duplicate_requests: 0.05,
        duplicate_replies: 0.05,
        reorder_replies: 0.05,
        ..Faults::none()
    }
}

/// A device with `buf_count` buffers and `latency` each way.
async fn sim(buf_count: usize, latency: Duration, faults: Faults) -> Sim {
    Sim::start(SimConfig {
        buf_count,
        delays: Delays {
            one_way_latency: latency,
            ..Delays::default()
        },
        faults,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn image(len: usize, seed: u64) -> Vec<u8> {
    test_image(len, seed, "1.2.3")
}

fn upload_options(window: Option<usize>) -> ImageUploadOptions {
    quick_upload_options(Duration::from_millis(400)).with_window(window.and_then(NonZeroUsize::new))
}

/// The device checked the image and slot 1 holds exactly it.
fn assert_uploaded(sim: &Sim, image: &[u8], summary: &UploadSummary, what: &str) {
    assert_eq!(summary.matched, Some(true), "{what}: the device's match");
    assert_eq!(summary.len, image.len() as u64);
    let slot = sim.slot(1).unwrap();
    assert!(slot[..image.len()] == *image, "{what}: slot 1 differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_upload_never_overruns_the_device_buffers() {
    init_tracing();
    let image = image(1 << 20, 7);
    for buf_count in [4, 8] {
        // A millisecond each way, so that the window fills before replies come back.
        let sim = sim(buf_count, Duration::from_millis(1), Faults::none()).await;
        // This test counts every datagram the device handled: a timer floor well above
        // the scheduling delays of a loaded test machine, so that no re-send or probe
        // comes from a reply that was merely late.
        let policy = RetryPolicy::default().with_min_rto(Duration::from_millis(500));
        let client = sim_client(&sim, policy).await;
        assert_eq!(client.max_in_flight(), buf_count - 1);
        let summary = client
            .upload_image(&image, &ImageUploadOptions::default(), |_| {})
            .await
            .unwrap();
        let what = format!("buf_count {buf_count}");
        assert_uploaded(&sim, &image, &summary, &what);
        assert_eq!(summary.max_in_flight, buf_count - 1, "{what}");
        let counters = sim.counters();
        assert_eq!(counters.dropped_no_buffer, 0, "{what}: {counters:?}");
        assert_eq!(
            summary.chunks,
            counters.processed - 1,
            "{what}: every chunk was sent once (and the parameters read)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_uploads_survive_loss_duplication_and_reordering() {
    init_tracing();
    let image = image(256 << 10, 8);
    for seed in SEEDS {
        let sim = sim(4, Duration::ZERO, faults(seed)).await;
        let client = sim_client(&sim, lossy_policy()).await;
        let summary = client
            .upload_image(&image, &upload_options(None), |_| {})
            .await
            .unwrap_or_else(|err| panic!("seed {seed:#x}: {err}"));
        assert_uploaded(&sim, &image, &summary, &format!("seed {seed:#x}"));
        assert_eq!(summary.max_in_flight, 3, "seed {seed:#x}");
        let counters = sim.counters();
        assert!(
            counters.dropped_by_fault > 5 && counters.replies_dropped > 5,
            "seed {seed:#x}: the faults happened: {counters:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_file_upload_is_byte_identical() {
    init_tracing();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 13 % 251) as u8).collect();
    let name = format!("{MOUNT_POINT}/pipelined.bin");
    let device = sim(4, Duration::from_millis(1), Faults::none()).await;
    let summary = sim_client(&device, RetryPolicy::default())
        .await
        .upload_file(&name, &data, &FileTransferOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(summary.max_in_flight, 3);
    assert!(summary.verified_with.is_some());
    assert!(device.file(&name).unwrap() == data, "the file differs");
    assert_eq!(device.counters().dropped_no_buffer, 0);

    // Under faults, a chunk the device refuses (it says FILE_OFFSET_NOT_VALID) is sent
    // again from the file length the device reports.
    let data = &data[..64 << 10];
    for seed in &SEEDS[..2] {
        let sim = sim(4, Duration::ZERO, faults(*seed)).await;
        let client = sim_client(&sim, lossy_policy()).await;
        let options = FileTransferOptions::default().with_window(NonZeroUsize::new(3));
        client
            .upload_file(&name, data, &options, |_| {})
            .await
            .unwrap_or_else(|err| panic!("seed {seed:#x}: {err}"));
        assert!(
            sim.file(&name).unwrap() == data,
            "seed {seed:#x}: the file differs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_chunks_are_in_flight_over_a_slow_link() {
    init_tracing();
    let image = image(128 << 10, 9);
    for (window, expected) in [(None, 3), (Some(1), 1)] {
        let sim = sim(4, Duration::from_millis(10), Faults::none()).await;
        let client = sim_client(&sim, RetryPolicy::default()).await;
        let summary = client
            .upload_image(&image, &upload_options(window), |_| {})
            .await
            .unwrap();
        let what = format!("window {window:?}");
        assert_uploaded(&sim, &image, &summary, &what);
        assert_eq!(summary.max_in_flight, expected, "{what}");
        assert_eq!(sim.counters().dropped_no_buffer, 0, "{what}");
    }
}
