//! The fault matrix: an image upload, a file upload, a file download and a series of
//! echoes against the simulated device over real loopback sockets, under every fault of
//! issue 7, seeded.
//!
//! Each cell must end in success with the data byte-identical (the device's slot, the
//! device's file, the downloaded file, every echo), or, for a permanent fault, in the expected typed error
//! after exactly the attempts the retry policy allows. A cell that does not end within
//! a generous bound is a hang; a success with different data is a wrong result. Both
//! fail the test, as does any other error.
//!
//! The matrix is printed as a Markdown table (`cargo test --test faults -- --nocapture`
//! shows it on success; a failure always shows it), each cell's time next to it as a
//! multiple of the same operation's time without faults (the first row, run alone
//! before the others). Those times are measured, never asserted: they show what
//! recovering from a fault costs.
//!
//! The serial column (`serial_fault_matrix`) runs the same rows, and rows of serial
//! faults (lost lines, corrupted bytes), over a pseudo-terminal against a device shaped
//! like native_sim's `serial` fixture, whose UART loses bursts of more than two lines:
//! the client runs with its default pacing throughout (`auto`: paced from the first
//! loss on).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use smp_client::messages::os::EchoRequest;
use smp_client::udp::UdpTarget;
use smp_client::{
    Client, ClientError, ClientOptions, FileTransferOptions, ImageUploadOptions, RetryPolicy,
    Transport,
};
use smp_integration_tests::{init_tracing, quick_upload_options};
use smp_mcuboot::{ImageBuilder, ImageVersion, sample_body};
use smp_sim::{Delays, Faults, SerialConfig, Silence, Sim, SimConfig};
use tokio::time::{Instant, sleep, timeout};

/// Body of the uploaded image (the image adds its header and TLVs).
const IMAGE_BODY: usize = 64 * 1024;
/// The downloaded file.
const FILE_NAME: &str = "/lfs1/faults/data.bin";
/// The uploaded file (the same data under another name).
const UPLOAD_NAME: &str = "/lfs1/faults/up.bin";
const FILE_LEN: usize = 64 * 1024;
/// Echoes per series.
const ECHOES: usize = 30;
/// Per-attempt timeout of every request but the first and last upload chunks.
const TIMEOUT: Duration = Duration::from_millis(100);
/// Per-attempt timeout of the first and last upload chunks (the sim erases instantly).
const CHUNK_TIMEOUT: Duration = Duration::from_millis(200);
/// How long a successful cell may take before it counts as a hang. Far longer than any
/// cell needs: this detects hangs, it does not measure speed.
const HANG_BOUND: Duration = Duration::from_secs(60);
/// How long the silent device stays silent.
const SILENCE: Duration = Duration::from_secs(3);

/// What a row's cells must end in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Success with identical data.
    Success,
    /// `ClientError::Timeout` after every attempt of the retry policy.
    Timeout,
    /// `ClientError::Busy` after every busy retry of the policy.
    Busy,
    /// Corrupted replies: success with identical data, or a typed error that says the
    /// reply was malformed (`Decode`) or the transfer went wrong (`Transfer`, which
    /// includes `HashMismatch`: accepted in this row only; every other row counts it a
    /// failure). SMP has no checksum of its own: echoes are checked by `Client::echo`,
    /// image and file data end to end by the device's `match` and the file hash. None
    /// may ever be wrong.
    Corrupted,
}

/// Something done to the device while a cell runs, besides the seeded faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disturbance {
    None,
    /// Reboot once, half-way through the operation.
    RebootHalfWay,
}

/// One row of the matrix.
#[derive(Debug, Clone)]
struct Row {
    name: &'static str,
    faults: Faults,
    /// The device's processing times (none but where a disturbance needs time to act).
    delays: Delays,
    policy: RetryPolicy,
    disturbance: Disturbance,
    expect: Expect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    // The numbers seed each cell's faults; the file upload came last.
    Upload = 0,
    FileUpload = 3,
    Download = 1,
    Echoes = 2,
}

impl Cell {
    const ALL: [Cell; 4] = [Cell::Upload, Cell::FileUpload, Cell::Download, Cell::Echoes];
}

/// How one cell ended.
#[derive(Debug)]
enum Outcome {
    /// Success, data identical; a note for the table (chunks sent, echoes flipped).
    Ok(String),
    /// A typed error.
    Error(ClientError),
    /// Success with different data: never acceptable.
    Wrong(String),
    /// Did not end within the bound.
    Hang(Duration),
    /// The test could not set the cell up (a disturbance that never happened...).
    Setup(String),
}

#[derive(Debug)]
struct CellResult {
    outcome: Outcome,
    elapsed: Duration,
    /// What the error had to fit in, for permanent faults.
    budget: Option<Duration>,
}

/// Short timeouts for loopback, enough retries that seeded loss never exhausts them.
fn policy(retries: u32) -> RetryPolicy {
    RetryPolicy::default()
        .with_timeout(TIMEOUT)
        .with_retries(retries)
        .with_backoff(Duration::from_millis(5))
        .with_max_backoff(Duration::from_millis(20))
        .with_busy_retries(20)
}

fn upload_options() -> ImageUploadOptions {
    quick_upload_options(CHUNK_TIMEOUT)
}

fn rows() -> Vec<Row> {
    let row = |name, faults: Faults| Row {
        name,
        faults,
        delays: Delays::default(),
        policy: policy(10),
        disturbance: Disturbance::None,
        expect: Expect::Success,
    };
    let f = Faults::none;
    vec![
        row("no fault", f()),
        row(
            "request loss 1%",
            Faults {
                drop_requests: 0.01,
                ..f()
            },
        ),
        row(
            "request loss 5%",
            Faults {
                drop_requests: 0.05,
                ..f()
            },
        ),
        row(
            "request loss 20%",
            Faults {
                drop_requests: 0.20,
                ..f()
            },
        ),
        row(
            "reply loss 10%",
            Faults {
                drop_replies: 0.10,
                ..f()
            },
        ),
        row(
            "duplicated requests and replies 20%",
            Faults {
                duplicate_requests: 0.20,
                duplicate_replies: 0.20,
                ..f()
            },
        ),
        row(
            "reordered replies 30%",
            Faults {
                reorder_replies: 0.30,
                ..f()
            },
        ),
        row(
            "replies delayed past the timeout 20% (250 ms)",
            Faults {
                delay_replies: 0.20,
                delay: Duration::from_millis(250),
                ..f()
            },
        ),
        Row {
            // 41 attempts of 100 ms outlast the 3 s silence.
            policy: policy(40),
            ..row(
                "device silent for 3 s, then back",
                Faults {
                    silence: Some(Silence {
                        after_requests: 5,
                        duration: SILENCE,
                    }),
                    ..f()
                },
            )
        },
        Row {
            disturbance: Disturbance::RebootHalfWay,
            // Slow enough flash that the reboot lands well inside each operation.
            delays: Delays {
                per_request: Duration::from_millis(1),
                per_kib_written: Duration::from_millis(2),
                ..Delays::default()
            },
            ..row("device reboots half-way", f())
        },
        row(
            "ENOMEM/EBUSY storm 25% each",
            Faults {
                enomem: 0.25,
                ebusy: 0.25,
                ..f()
            },
        ),
        Row {
            expect: Expect::Corrupted,
            ..row(
                "corrupted bit in replies 5%",
                Faults {
                    corrupt_replies: 0.05,
                    ..f()
                },
            )
        },
        Row {
            policy: policy(3),
            expect: Expect::Timeout,
            ..row(
                "permanent: every request lost",
                Faults {
                    drop_requests: 1.0,
                    ..f()
                },
            )
        },
        Row {
            policy: policy(3),
            expect: Expect::Busy,
            ..row(
                "permanent: ENOMEM to every request",
                Faults { enomem: 1.0, ..f() },
            )
        },
    ]
}

/// What the cells move: the image, the file, the echo strings.
struct Data {
    image: Vec<u8>,
    file: Vec<u8>,
    echoes: Vec<String>,
}

impl Data {
    fn new() -> Self {
        let version: ImageVersion = "1.2.3".parse().unwrap();
        Self {
            image: ImageBuilder::new(version).build(&sample_body(IMAGE_BODY, 0xfa17)),
            file: sample_body(FILE_LEN, 0xf11e),
            echoes: (0..ECHOES)
                .map(|i| {
                    let filler: String = (0..(i * 97) % 1200)
                        .map(|j| char::from(b'a' + ((i + j) % 26) as u8))
                        .collect();
                    format!("echo {i} {filler}")
                })
                .collect(),
        }
    }
}

impl Data {
    /// What the serial cells move: less, as a paced line carries about 9 KB/s, and
    /// echoes that fit the 380-byte frames of the serial device.
    fn serial() -> Self {
        let version: ImageVersion = "1.2.3".parse().unwrap();
        Self {
            image: ImageBuilder::new(version).build(&sample_body(SERIAL_DATA, 0xfa17)),
            file: sample_body(SERIAL_DATA, 0xf11e),
            echoes: (0..ECHOES)
                .map(|i| {
                    let filler: String = (0..(i * 97) % 350)
                        .map(|j| char::from(b'a' + ((i + j) % 26) as u8))
                        .collect();
                    format!("echo {i} {filler}")
                })
                .collect(),
        }
    }
}

/// The longest a request may take when every attempt times out.
fn timeout_budget(policy: &RetryPolicy, cell: Cell) -> Duration {
    let first = match cell {
        Cell::Upload => CHUNK_TIMEOUT,
        Cell::FileUpload | Cell::Download | Cell::Echoes => policy.timeout,
    };
    policy.budget(first)
}

/// The pauses of every busy retry the policy allows.
fn busy_budget(policy: &RetryPolicy) -> Duration {
    (0..policy.busy_retries)
        .map(|a| policy.backoff_after(a))
        .sum()
}

/// The faults of one cell: the row's, with a seed of the cell's own.
fn cell_faults(row: &Row, index: usize, cell: Cell) -> Faults {
    Faults {
        seed: 0x7e57_0000 + (index as u64) * 16 + cell as u64,
        ..row.faults
    }
}

/// Reboots `sim` once `ready` says so (polled every millisecond); returns whether it did.
/// Stops waiting, without rebooting, once `over` is set.
fn reboot_when(
    sim: &Arc<Sim>,
    over: &Arc<AtomicBool>,
    ready: impl Fn(&Sim) -> bool + Send + 'static,
) -> tokio::task::JoinHandle<bool> {
    let (sim, over) = (Arc::clone(sim), Arc::clone(over));
    tokio::spawn(async move {
        while !over.load(Ordering::Acquire) {
            if ready(&sim) {
                sim.reboot();
                return true;
            }
            sleep(Duration::from_millis(1)).await;
        }
        false
    })
}

async fn run_cell<T: Transport + 'static>(
    sim: &Arc<Sim>,
    client: &Client<T>,
    data: &Data,
    row: &Row,
    index: usize,
    cell: Cell,
) -> CellResult {
    sim.set_faults(cell_faults(row, index, cell));
    let over = Arc::new(AtomicBool::new(false));
    let reboot = (row.disturbance == Disturbance::RebootHalfWay).then(|| {
        let processed = sim.counters().processed;
        match cell {
            Cell::Upload => reboot_when(sim, &over, |sim| {
                sim.upload_progress()
                    .is_some_and(|(off, len)| off >= len / 2)
            }),
            // About half of the file's chunks either way, half of the echoes.
            Cell::FileUpload | Cell::Download => reboot_when(sim, &over, move |sim| {
                sim.counters().processed >= processed + 16
            }),
            Cell::Echoes => reboot_when(sim, &over, move |sim| {
                sim.counters().processed >= processed + ECHOES as u64 / 2
            }),
        }
    });
    let bound = match row.expect {
        Expect::Success | Expect::Corrupted => HANG_BOUND,
        Expect::Timeout => timeout_budget(&row.policy, cell) * 3 + Duration::from_secs(5),
        Expect::Busy => busy_budget(&row.policy) * 3 + Duration::from_secs(5),
    };
    let started = Instant::now();
    let outcome = match timeout(bound, operate(sim, client, data, cell)).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Hang(bound),
    };
    let elapsed = started.elapsed();
    over.store(true, Ordering::Release);
    sim.set_faults(Faults::none());
    let outcome = match reboot {
        Some(task) => {
            let rebooted = task.await.unwrap_or(false);
            match outcome {
                Outcome::Ok(_) if !rebooted => {
                    Outcome::Setup("the operation ended before the device rebooted".into())
                }
                other => other,
            }
        }
        None => outcome,
    };
    let budget = match row.expect {
        Expect::Success | Expect::Corrupted => None,
        Expect::Timeout => Some(timeout_budget(&row.policy, cell)),
        Expect::Busy => Some(busy_budget(&row.policy)),
    };
    CellResult {
        outcome,
        elapsed,
        budget,
    }
}

/// Runs one operation and checks its data against the device's.
async fn operate<T: Transport + 'static>(
    sim: &Arc<Sim>,
    client: &Client<T>,
    data: &Data,
    cell: Cell,
) -> Outcome {
    match cell {
        Cell::Upload => match client
            .upload_image(&data.image, &upload_options(), |_| {})
            .await
        {
            Err(err) => Outcome::Error(err),
            Ok(summary) => {
                let slot = sim.slot(1).unwrap_or_default();
                if slot.get(..data.image.len()) != Some(&data.image[..]) {
                    Outcome::Wrong(format!(
                        "upload reported success ({} chunks, match {:?}), but slot 1 differs from the image",
                        summary.chunks, summary.matched
                    ))
                } else if summary.matched != Some(true) || summary.len != data.image.len() as u64 {
                    Outcome::Wrong(format!("unexpected summary {summary:?}"))
                } else {
                    Outcome::Ok(format!(", {} chunks", summary.chunks))
                }
            }
        },
        Cell::FileUpload => {
            // Verified as well: the device's SHA-256 of the file it holds once the upload
            // has closed it, compared with the data; and the file itself, checked here.
            let options = FileTransferOptions::default();
            match client
                .upload_file(UPLOAD_NAME, &data.file, &options, |_| {})
                .await
            {
                Err(err) => Outcome::Error(err),
                Ok(summary) if sim.file(UPLOAD_NAME).as_deref() != Some(&data.file[..]) => {
                    Outcome::Wrong(format!(
                        "upload reported success ({summary:?}), but the device's file differs"
                    ))
                }
                Ok(summary) if summary.verified_with.is_none() => {
                    Outcome::Wrong(format!("the upload was not verified: {summary:?}"))
                }
                Ok(summary) => Outcome::Ok(format!(", {} chunks", summary.chunks)),
            }
        }
        Cell::Download => {
            // Verified: the device's SHA-256 of the file is compared with the data.
            let options = FileTransferOptions::default();
            assert!(options.verify);
            match client.download_file(FILE_NAME, &options, |_| {}).await {
                Err(err) => Outcome::Error(err),
                Ok((got, summary)) if got == data.file => {
                    Outcome::Ok(format!(", {} chunks", summary.chunks))
                }
                Ok((got, summary)) => Outcome::Wrong(format!(
                    "downloaded {} bytes that differ from the device's {} ({summary:?})",
                    got.len(),
                    data.file.len()
                )),
            }
        }
        Cell::Echoes => {
            // `Client::echo` checks that the text came back unchanged and sends again
            // when it did not: even corrupted replies never give a wrong echo.
            for (i, d) in data.echoes.iter().enumerate() {
                match client.echo(d).await {
                    Err(err) => return Outcome::Error(err),
                    Ok(reply) if reply == *d => {}
                    Ok(reply) => {
                        return Outcome::Wrong(format!(
                            "echo {i}: sent {} bytes, got {} bytes back",
                            d.len(),
                            reply.len(),
                        ));
                    }
                }
            }
            Outcome::Ok(String::new())
        }
    }
}

/// Runs a whole row on a device of its own.
async fn run_row(index: usize, row: Row, data: Arc<Data>) -> Vec<CellResult> {
    let config = SimConfig {
        delays: row.delays,
        ..SimConfig::default()
    };
    let sim = Arc::new(Sim::start(config).await.unwrap());
    let options = ClientOptions::default().with_retry(row.policy.clone());
    let client = Client::connect_udp(UdpTarget::from(sim.addr()), options)
        .await
        .expect("connects to the simulated device");
    // The file to download, put there before any fault.
    client
        .upload_file(
            FILE_NAME,
            &data.file,
            &FileTransferOptions::default(),
            |_| {},
        )
        .await
        .expect("the file is uploaded without faults");
    assert_eq!(sim.file(FILE_NAME).as_deref(), Some(&data.file[..]));
    let mut results = Vec::new();
    for cell in Cell::ALL {
        results.push(run_cell(&sim, &client, &data, &row, index, cell).await);
    }
    results
}

/// Checks a cell against its row's expectation; `None` when it is as it must be.
fn verdict(row: &Row, result: &CellResult) -> Option<String> {
    match (&result.outcome, row.expect) {
        (Outcome::Ok(_), Expect::Success | Expect::Corrupted) => None,
        (
            Outcome::Error(ClientError::Decode { .. } | ClientError::Transfer(_)),
            Expect::Corrupted,
        ) => None,
        (Outcome::Error(ClientError::Timeout { attempts, .. }), Expect::Timeout)
            if *attempts == row.policy.retries + 1 =>
        {
            None
        }
        (Outcome::Error(ClientError::Busy { last, attempts }), Expect::Busy)
            if *attempts == row.policy.busy_retries + 1 && last.is_back_pressure() =>
        {
            None
        }
        (Outcome::Wrong(why), _) => Some(format!("WRONG RESULT: {why}")),
        (Outcome::Setup(why), _) => Some(format!("the cell could not run: {why}")),
        (Outcome::Hang(bound), _) => Some(format!("did not end within {bound:?}")),
        (outcome, expect) => Some(format!("expected {expect:?}, got {outcome:?}")),
    }
}

/// Milliseconds, with a decimal below 10.
fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// A cell of the table: how it ended, and its time.
fn show(result: &CellResult) -> String {
    let time = millis(result.elapsed);
    match &result.outcome {
        Outcome::Ok(note) => format!("ok {time}{note}"),
        Outcome::Error(err) => {
            let kind = match err {
                ClientError::Timeout { attempts, .. } => format!("Timeout ({attempts} attempts)"),
                ClientError::Busy { attempts, .. } => format!("Busy ({attempts} attempts)"),
                ClientError::Decode { .. } => "Decode".to_owned(),
                ClientError::Transfer(_) => "Transfer".to_owned(),
                ClientError::Device(e) => format!("Device {e}"),
                other => format!("{other:?}"),
            };
            match result.budget {
                Some(budget) => format!("{kind} {time} (budget {})", millis(budget)),
                None => format!("{kind} {time}"),
            }
        }
        Outcome::Wrong(_) => format!("WRONG {time}"),
        Outcome::Hang(bound) => format!("HANG (> {})", millis(*bound)),
        Outcome::Setup(_) => "SETUP FAILED".to_owned(),
    }
}

/// The time column of a cell: its time as a multiple of the same operation without
/// faults, for cells that succeeded.
fn against(result: &CellResult, no_fault: Option<&CellResult>) -> String {
    match (&result.outcome, no_fault) {
        (Outcome::Ok(_), Some(base)) if !base.elapsed.is_zero() => {
            format!(
                "{:.1}×",
                result.elapsed.as_secs_f64() / base.elapsed.as_secs_f64()
            )
        }
        _ => "–".to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_matrix() {
    init_tracing();
    let data = Arc::new(Data::new());
    let rows = rows();
    // The first row, no fault, is what every other cell's time is compared with: it runs
    // alone, before the others, so that its times are not those of a busy machine.
    assert_eq!(rows[0].name, "no fault");
    let baseline = tokio::spawn(run_row(0, rows[0].clone(), data.clone())).await;
    // Rows are independent devices and clients: run a few at once to keep the whole
    // matrix short, not so many that the loopback timeouts compete for the CPU.
    let limit = Arc::new(tokio::sync::Semaphore::new(4));
    let mut tasks = Vec::new();
    for (index, row) in rows.iter().cloned().enumerate().skip(1) {
        let (data, limit) = (data.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await.unwrap();
            run_row(index, row, data).await
        }));
    }
    let mut outcomes = vec![baseline];
    for task in tasks {
        outcomes.push(task.await);
    }
    let mut table = String::from(
        "\n| fault | image upload (64 KiB) | × no fault | file upload (64 KiB) | × no fault | file download (64 KiB) | × no fault | 30 echoes | × no fault |\n\
         |---|---|---:|---|---:|---|---:|---|---:|\n",
    );
    let mut failures = Vec::new();
    // The first row's results, once it is in.
    let mut no_fault: Option<Vec<CellResult>> = None;
    for (row, outcome) in rows.iter().zip(outcomes) {
        let results = match outcome {
            Ok(results) => results,
            Err(err) => {
                failures.push(format!("{}: the row panicked: {err}", row.name));
                let _ = writeln!(
                    table,
                    "| {} | PANIC | – | PANIC | – | PANIC | – | PANIC | – |",
                    row.name
                );
                continue;
            }
        };
        let cells: Vec<String> = results
            .iter()
            .enumerate()
            .map(|(i, result)| {
                let base = no_fault
                    .as_ref()
                    .and_then(|base| base.get(i))
                    .unwrap_or(result);
                format!("{} | {}", show(result), against(result, Some(base)))
            })
            .collect();
        let _ = writeln!(table, "| {} | {} |", row.name, cells.join(" | "));
        for (cell, result) in Cell::ALL.iter().zip(&results) {
            if let Some(why) = verdict(row, result) {
                failures.push(format!("{} / {cell:?}: {why}", row.name));
            }
        }
        if no_fault.is_none() {
            no_fault = Some(results);
        }
    }
    println!("{table}");
    assert!(
        failures.is_empty(),
        "fault matrix failures:\n{}\n{table}",
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// The serial column: the same cells over a pseudo-terminal.

/// Size of the serial cells' image body and file.
const SERIAL_DATA: usize = 16 * 1024;

/// The rows of the matrix, then the faults only a serial line has. Every row runs
/// against a UART that loses a line arriving while its two line buffers are taken.
fn serial_rows() -> Vec<Row> {
    let mut rows = rows();
    let base = rows[0].clone();
    assert_eq!(base.faults, Faults::none(), "the first row has no fault");
    let f = Faults::none;
    rows.extend([
        Row {
            name: "serial: lost lines 2% (either way)",
            faults: Faults {
                drop_lines: 0.02,
                ..f()
            },
            ..base.clone()
        },
        Row {
            // CRC16 catches every changed byte: the frame is dropped, never taken
            // for another, so the data must be identical.
            name: "serial: a byte corrupted in 5% of lines (either way)",
            faults: Faults {
                corrupt_lines: 0.05,
                ..f()
            },
            ..base.clone()
        },
        Row {
            name: "serial: lost lines 1%, corrupted 1%, requests lost 5%",
            faults: Faults {
                drop_lines: 0.01,
                corrupt_lines: 0.01,
                drop_requests: 0.05,
                ..f()
            },
            ..base
        },
    ]);
    rows
}

/// Runs a whole row on a serial device of its own, over a pseudo-terminal.
async fn run_serial_row(index: usize, row: Row, data: Arc<Data>) -> Vec<CellResult> {
    // native_sim's `serial` fixture: 4 buffers of 384 B, 128-byte lines, 2 line buffers.
    let config = SimConfig {
        buf_count: 4,
        buf_size: 384,
        delays: row.delays,
        ..SimConfig::default()
    };
    let sim = Arc::new(
        Sim::start_serial(config, SerialConfig::pty())
            .await
            .unwrap(),
    );
    let options = ClientOptions::default().with_retry(row.policy.clone());
    let target = sim.serial_target().unwrap();
    let client = Client::connect_serial(target, options)
        .await
        .expect("connects to the simulated device's pty");
    client
        .upload_file(
            FILE_NAME,
            &data.file,
            &FileTransferOptions::default(),
            |_| {},
        )
        .await
        .expect("the file is uploaded without faults");
    assert_eq!(sim.file(FILE_NAME).as_deref(), Some(&data.file[..]));
    let mut results = Vec::new();
    for cell in Cell::ALL {
        // Seeds of their own, apart from the UDP column's.
        results.push(run_cell(&sim, &client, &data, &row, index + 0x100, cell).await);
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_fault_matrix() {
    init_tracing();
    let data = Arc::new(Data::serial());
    let rows = serial_rows();
    // Serial rows mostly wait for the pacing of their lines: more of them at once.
    let limit = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for (index, row) in rows.iter().cloned().enumerate() {
        let (data, limit) = (data.clone(), limit.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await.unwrap();
            run_serial_row(index, row, data).await
        }));
    }
    let kib = SERIAL_DATA / 1024;
    let mut table = format!(
        "\n| fault (serial, pty) | image upload ({kib} KiB) | file upload ({kib} KiB) | file download ({kib} KiB) | 30 echoes |\n|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    for (row, task) in rows.iter().zip(tasks) {
        let results = match task.await {
            Ok(results) => results,
            Err(err) => {
                failures.push(format!("{}: the row panicked: {err}", row.name));
                let _ = writeln!(table, "| {} | PANIC | PANIC | PANIC | PANIC |", row.name);
                continue;
            }
        };
        let cells: Vec<String> = results.iter().map(show).collect();
        let _ = writeln!(table, "| {} | {} |", row.name, cells.join(" | "));
        for (cell, result) in Cell::ALL.iter().zip(&results) {
            if let Some(why) = verdict(row, result) {
                failures.push(format!("{} / {cell:?}: {why}", row.name));
            }
        }
    }
    println!("{table}");
    assert!(
        failures.is_empty(),
        "serial fault matrix failures:\n{}\n{table}",
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// A corrupted `off` in an image upload reply, bit by bit.
//
// The simulated device flips random bits; these tests flip chosen bits of the offset in
// the reply of a scripted device that follows Zephyr's upload rules (docs/protocol.md 5.7),
// over the in-memory transport, with the clock paused.

mod corrupted_offset {
    use std::sync::{Arc, Mutex};

    use smp_client::header::{Header, Op, group};
    use smp_client::messages::image::UploadRequest;
    use smp_client::transport::MemoryTransport;
    use smp_client::{Client, ClientError, ClientOptions, ImageUploadOptions, Transport};
    use smp_mcuboot::sample_body;

    /// Which bit of the reply's `off` to flip, given the true offset, if any.
    type Flip = Box<dyn Fn(u64) -> Option<u32> + Send>;

    /// What the scripted device holds.
    #[derive(Debug, Default)]
    pub(super) struct Held {
        /// Image size announced by the first chunk.
        pub(super) len: u64,
        /// Bytes received in order.
        pub(super) data: Vec<u8>,
        /// Offsets the replies reported, after corruption.
        pub(super) reported: Vec<u64>,
    }

    /// `{"off": off, "match"?: bool}` as Zephyr writes it (indefinite map), with bit
    /// `flip` of the offset's big-endian argument flipped. The offset must take two
    /// bytes (256..=65535), so that the flip changes the value and nothing else.
    fn reply(request: &Header, off: u64, matched: Option<bool>, flip: Option<u32>) -> Vec<u8> {
        let off = u16::try_from(off).expect("two-byte offsets only");
        assert!(off >= 256, "two-byte offsets only");
        let mut payload = vec![0xbf, 0x63, b'o', b'f', b'f', 0x19];
        payload.extend(off.to_be_bytes());
        if let Some(bit) = flip {
            payload[6 + 1 - (bit as usize / 8)] ^= 1 << (bit % 8);
        }
        if let Some(matched) = matched {
            payload.extend([0x65, b'm', b'a', b't', b'c', b'h']);
            payload.push(if matched { 0xf5 } else { 0xf4 });
        }
        payload.push(0xff);
        let mut header = *request;
        header.op = request.op.response();
        header.length = payload.len() as u16;
        let mut frame = header.encode().to_vec();
        frame.extend(payload);
        frame
    }

    /// Serves image upload chunks on `device` until the client goes away.
    async fn serve(device: MemoryTransport, image: Vec<u8>, held: Arc<Mutex<Held>>, flip: Flip) {
        while let Ok(frame) = device.receive().await {
            let request = Header::decode(&frame).unwrap();
            assert_eq!(
                (request.op, request.group, request.command),
                (Op::Write, group::IMAGE, 1)
            );
            let chunk: UploadRequest<'_> = minicbor::decode(&frame[8..]).unwrap();
            let (off, matched, bit) = {
                let mut held = held.lock().unwrap();
                if chunk.off == 0 {
                    held.len = chunk.len.expect("the first chunk has len");
                    held.data.clear();
                }
                if chunk.off == held.data.len() as u64 {
                    held.data.extend_from_slice(&chunk.data);
                }
                let off = held.data.len() as u64;
                let matched = (off == held.len).then(|| held.data == image);
                let bit = flip(off);
                held.reported.push(match bit {
                    Some(bit) => off ^ (1 << bit),
                    None => off,
                });
                (off, matched, bit)
            };
            device
                .send(&reply(&request, off, matched, bit))
                .await
                .unwrap();
        }
    }

    /// Uploads `image` to a scripted device that corrupts offsets as `flip` says.
    pub(super) async fn upload(
        image: &[u8],
        flip: Flip,
    ) -> (Result<smp_client::UploadSummary, ClientError>, Held) {
        let (client_end, device_end) = MemoryTransport::pair(1472).unwrap();
        let held = Arc::new(Mutex::new(Held::default()));
        let device = tokio::spawn(serve(device_end, image.to_vec(), held.clone(), flip));
        let options = ClientOptions::default().with_read_params(false);
        let client = Client::new(client_end, options).await.unwrap();
        let result = client
            .upload_image(image, &ImageUploadOptions::default(), |_| {})
            .await;
        drop(client);
        device.await.unwrap();
        let held = std::mem::take(&mut *held.lock().unwrap());
        (result, held)
    }

    /// The chunk ends of an upload of `len` bytes, from an honest device.
    pub(super) async fn chunk_ends(len: usize) -> Vec<u64> {
        let image = sample_body(len, 1);
        let (result, held) = upload(&image, Box::new(|_| None)).await;
        result.unwrap();
        held.reported
    }
}

/// A flipped bit turns an offset into another valid one: larger (the client skips
/// ahead, the device refuses the chunk and answers its real offset) or smaller (the
/// client re-sends what the device has). Either way the device ends up with the image.
#[tokio::test(start_paused = true)]
async fn a_corrupted_offset_is_resynchronised_by_the_device() {
    let image = sample_body(60_000, 2);
    // Flip bit 14 (+/- 16 KiB) of the 3rd and 9th replies, bit 3 of the 20th.
    let replies = std::sync::atomic::AtomicUsize::new(0);
    let flip = Box::new(move |_off: u64| {
        match replies.fetch_add(1, std::sync::atomic::Ordering::Relaxed) {
            2 | 8 => Some(14),
            19 => Some(3),
            _ => None,
        }
    });
    let (result, held) = corrupted_offset::upload(&image, flip).await;
    let summary = result.expect("the upload completes");
    assert_eq!(summary.matched, Some(true));
    assert_eq!(held.data, image, "the device holds exactly the image");
    assert!(
        held.reported.iter().any(|&off| off > 20_000) && held.reported.len() > 3,
        "the corrupted offsets were sent: {:?}",
        held.reported
    );
}

/// A reply whose `off` was corrupted into exactly the image length must not end the
/// upload as a success while the device holds only part of the image: on a device that
/// sends no `match` it would look like a finished upload. The client takes no offset
/// beyond the end of the chunk it answers (only a first chunk may jump ahead, to resume).
#[tokio::test(start_paused = true)]
async fn an_offset_corrupted_into_the_length_is_not_a_success() {
    // An image whose length is the 2nd chunk's end with bit 15 set: one flipped bit in
    // the 2nd reply turns the device's offset into the image length.
    let second = corrupted_offset::chunk_ends(40_000).await[1];
    assert!(second < 0x8000);
    let len = second | 0x8000;
    assert_eq!(
        corrupted_offset::chunk_ends(len as usize).await[1],
        second,
        "same chunking"
    );
    let image = sample_body(len as usize, 3);
    // Once: the device's next answer for that offset is sound.
    let flipped = std::sync::atomic::AtomicBool::new(false);
    let flip = move |off| {
        (off == second && !flipped.swap(true, std::sync::atomic::Ordering::Relaxed)).then_some(15)
    };
    let (result, held) = corrupted_offset::upload(&image, Box::new(flip)).await;
    let summary = result.expect("the damaged reply is ignored and the upload completes");
    assert_eq!(summary.len, image.len() as u64);
    assert!(held.data == image, "the device holds exactly the image");
    assert!(
        held.reported.contains(&len),
        "the corrupted offset was sent: {:?}",
        held.reported
    );
}

/// One reply whose body no longer decodes (here the key `r` became `s`, one flipped bit)
/// is a transient fault: the client takes it as lost and sends the request again, and
/// reports `ClientError::Decode` only when every attempt was malformed.
#[tokio::test(start_paused = true)]
async fn one_malformed_reply_is_taken_as_lost() {
    use smp_client::Transport;
    use smp_client::header::Header;
    use smp_client::transport::MemoryTransport;

    let (client_end, device) = MemoryTransport::pair(1472).unwrap();
    let device = tokio::spawn(async move {
        let mut receipts = 0;
        while let Ok(frame) = device.receive().await {
            receipts += 1;
            let request = Header::decode(&frame).unwrap();
            // `{"r": "hi"}`, the key corrupted on the first answer only.
            let key = if receipts == 1 { b's' } else { b'r' };
            let payload = [0xbf, 0x61, key, 0x62, b'h', b'i', 0xff];
            let mut header = request;
            header.op = request.op.response();
            header.length = payload.len() as u16;
            let mut reply = header.encode().to_vec();
            reply.extend(payload);
            device.send(&reply).await.unwrap();
        }
        receipts
    });
    let options = ClientOptions::default().with_read_params(false);
    let client = Client::new(client_end, options).await.unwrap();
    let result = client.request(&EchoRequest { d: "hi".into() }).await;
    drop(client);
    let receipts = device.await.unwrap();
    match result {
        Ok(reply) => assert_eq!(reply.r, "hi"),
        Err(err) => {
            panic!("one corrupted reply ended the request after {receipts} attempt(s): {err}")
        }
    }
}
