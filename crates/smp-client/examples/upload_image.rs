//! Image upload with progress, then the image state that shows where the image went.
//!
//! ```text
//! cargo run -p smp-client --example upload_image -- 127.0.0.1:1337 zephyr.signed.bin
//! ```
//!
//! The upload is pipelined (as many chunks in flight as the device's buffers hold),
//! resumes where the device stopped if it was interrupted (run it again), and sends a
//! lost chunk again from the offset the device reports.

use std::process::ExitCode;
use std::time::Instant;

use smp_client::udp::UdpTarget;
use smp_client::{Client, ClientOptions, ErrorChain, ImageUploadOptions, Progress};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [device, file] = args.as_slice() else {
        eprintln!("usage: upload_image DEVICE FILE");
        return ExitCode::from(2);
    };
    match run(device, file).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("upload_image: {}", ErrorChain(&*err));
            ExitCode::FAILURE
        }
    }
}

async fn run(device: &str, file: &str) -> Result<(), Box<dyn std::error::Error>> {
    let image = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    let target: UdpTarget = device.parse()?;
    let client = Client::connect_udp(target, ClientOptions::default()).await?;

    // Progress comes whenever the device's offset moves; print every tenth.
    let mut shown = 0;
    let report = |p: Progress| {
        let tenth = p.done * 10 / p.total.max(1);
        if tenth > shown || p.done == p.total {
            shown = tenth;
            println!(
                "  {:>3}%  {} of {} bytes",
                p.done * 100 / p.total.max(1),
                p.done,
                p.total
            );
        }
    };
    let started = Instant::now();
    let summary = client
        .upload_image(&image, &ImageUploadOptions::default(), report)
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "uploaded {} bytes in {seconds:.2} s ({:.0} KB/s): {} chunks, up to {} in flight{}",
        summary.len,
        summary.len as f64 / seconds / 1000.0,
        summary.chunks,
        summary.max_in_flight,
        match summary.resumed_at {
            0 => String::new(),
            at => format!(", resumed at {at}"),
        }
    );
    for slot in client.image_state().await? {
        let hash = slot.hash.map(|h| h.to_string()).unwrap_or_default();
        println!("  slot {}: version {} hash {hash}", slot.slot, slot.version);
    }
    Ok(())
}
