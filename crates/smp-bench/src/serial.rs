//! The serial side of `smp-bench`: an image upload over a serial port, with what the
//! transport counted, and a wait for a device that is still booting.
//!
//! `serial-upload` connects to a pseudo-terminal or `socket://HOST:PORT` with default
//! client options (the window from the device's `buf_count`) and the pacing asked for,
//! then times the upload alone. Besides the time it reports, from the transport's
//! counters ([`SerialStats`]), the bytes written and read (framing included), the
//! console lines, the frames sent (re-sends included) and the time pacing held writes
//! back; and the CPU time the process spent meanwhile, so that the bench can split the
//! upload into the client's own work, pacing, and waiting for the device.
//!
//! `serial-wait` asks again and again, on one connection, until the device answers an
//! image state read (an application or MCUboot's serial recovery, whichever is up), then
//! lets go of the port: the bench waits for an emulated board to boot before any timed
//! upload.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use smp_client::serial::{Pacing, SerialOptions, SerialStats, SerialTarget};
use smp_client::{Client, ClientOptions, ImageUploadOptions, RetryPolicy};

fn target(port: &str, line_length: usize, pacing: Pacing) -> Result<SerialTarget, String> {
    let target: SerialTarget = port.parse().map_err(|e| format!("{port}: {e}"))?;
    Ok(target.with_options(
        SerialOptions::default()
            .line_length(line_length)
            .pacing(pacing),
    ))
}

/// CPU time of this process so far, all threads: the sum of each thread's time on a
/// CPU from `/proc/self/task/*/schedstat` (nanoseconds), or `None` off Linux.
fn cpu_time() -> Option<Duration> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let mut total = 0u64;
    let mut any = false;
    for task in tasks.flatten() {
        // A thread that ended meanwhile has taken its time with it.
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        if let Some(ns) = stat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
        {
            total += ns;
            any = true;
        }
    }
    any.then(|| Duration::from_nanos(total))
}

/// The counters' growth from `before` to `after`.
fn grown(before: SerialStats, after: SerialStats) -> Value {
    json!({
        "frames_sent": after.frames_sent - before.frames_sent,
        "bytes_written": after.bytes_written - before.bytes_written,
        "lines_written": after.lines_written - before.lines_written,
        "frames_received": after.frames_received - before.frames_received,
        "bytes_read": after.bytes_read - before.bytes_read,
        "pacing_waited_seconds": (after.pacing_waited - before.pacing_waited).as_secs_f64(),
        "losses_noted": after.losses_noted - before.losses_noted,
    })
}

pub(crate) async fn upload(
    port: &str,
    image_path: &Path,
    line_length: usize,
    pacing: Pacing,
) -> Result<Value, String> {
    let image = std::fs::read(image_path)
        .map_err(|e| format!("cannot read {}: {e}", image_path.display()))?;
    let started = Instant::now();
    let client =
        Client::connect_serial(target(port, line_length, pacing)?, ClientOptions::default())
            .await
            .map_err(|e| format!("connect to {port}: {e}"))?;
    let connect = started.elapsed();
    let before = client.transport().stats();
    let cpu_before = cpu_time();
    let started = Instant::now();
    let summary = client
        .upload_image(&image, &ImageUploadOptions::default(), |_| {})
        .await
        .map_err(|e| format!("upload to {port}: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| (after - before).as_secs_f64());
    let after = client.transport().stats();
    let mut report = crate::upload_report(&client, image.len(), connect, seconds, &summary);
    let _ = client.close().await;
    let serial = json!({
        "line_length": line_length,
        "pacing": pacing.to_string(),
        "pacing_burst": if pacing.is_none() { 0 } else { pacing.burst() },
        "pacing_pause_ms": pacing.pause().as_secs_f64() * 1000.0,
        "cpu_seconds": cpu,
    });
    if let Value::Object(report) = &mut report {
        for extra in [serial, grown(before, after)] {
            if let Value::Object(extra) = extra {
                report.extend(extra);
            }
        }
    }
    Ok(report)
}

pub(crate) async fn wait(port: &str, seconds: f64) -> Result<Value, String> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds.max(0.0));
    let quick = ClientOptions::default().with_read_params(false).with_retry(
        RetryPolicy::default()
            .with_timeout(Duration::from_millis(1000))
            .with_retries(0),
    );
    let mut attempts = 0u32;
    let mut last = String::from("nothing tried");
    // One connection, asked again and again: an emulated board whose client goes away
    // while it boots may never take its serial socket again (QEMU reads the socket, and
    // so sees it closed, only once the guest's UART receives).
    while Instant::now() < deadline {
        let client = match Client::connect_serial(
            target(port, SerialOptions::DEFAULT_LINE_LENGTH, Pacing::default())?,
            quick.clone(),
        )
        .await
        {
            Ok(client) => client,
            Err(e) => {
                last = e.to_string();
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        while Instant::now() < deadline {
            attempts += 1;
            match client.image_state().await {
                Ok(_) => {
                    let _ = client.close().await;
                    return Ok(json!({
                        "waited_seconds": started.elapsed().as_secs_f64(),
                        "attempts": attempts,
                    }));
                }
                Err(smp_client::ClientError::Closed) => {
                    last = "the port closed".to_owned();
                    break;
                }
                Err(e) => last = e.to_string(),
            }
        }
        let _ = client.close().await;
    }
    Err(format!(
        "{port}: no answer to an image state read within {seconds} s ({attempts} attempts; last: {last})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows() {
        if cfg!(target_os = "linux") {
            let before = cpu_time().unwrap();
            let mut x = 0u64;
            for i in 0..2_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
            assert!(cpu_time().unwrap() > before);
        }
    }
}
