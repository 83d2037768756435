//! Reading and changing the image state: list the slots, mark an image for test, or
//! confirm one.
//!
//! ```text
//! cargo run -p smp-client --example image_state -- 127.0.0.1:1337
//! cargo run -p smp-client --example image_state -- 127.0.0.1:1337 test dd1758a0...
//! cargo run -p smp-client --example image_state -- 127.0.0.1:1337 confirm [HASH]
//! ```
//!
//! An image marked for test runs from the next boot once; confirming it (or the running
//! image, without a hash) keeps it after later boots.

use std::process::ExitCode;

use smp_client::messages::image::ImageState;
use smp_client::proto::ImageHash;
use smp_client::udp::UdpTarget;
use smp_client::{Client, ClientOptions, ErrorChain};

const USAGE: &str = "usage: image_state DEVICE [test HASH | confirm [HASH]]";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((device, action)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match run(device, action).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("image_state: {}", ErrorChain(&*err));
            ExitCode::FAILURE
        }
    }
}

async fn run(device: &str, action: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let target: UdpTarget = device.parse()?;
    let client = Client::connect_udp(target, ClientOptions::default()).await?;
    let images = match action {
        [] => client.image_state().await?,
        [verb, hash] if verb == "test" => {
            // Hashes print and parse as hex.
            let hash: ImageHash = hash.parse()?;
            client.test_image(&hash).await?
        }
        [verb] if verb == "confirm" => client.confirm_image(None).await?,
        [verb, hash] if verb == "confirm" => {
            let hash: ImageHash = hash.parse()?;
            client.confirm_image(Some(&hash)).await?
        }
        _ => return Err(USAGE.into()),
    };
    for image in &images {
        println!("{}", describe(image));
    }
    Ok(())
}

/// `slot 1: 1.2.3 dd1758a0... [pending]`
fn describe(image: &ImageState) -> String {
    let flags: Vec<&str> = [
        (image.active, "active"),
        (image.confirmed, "confirmed"),
        (image.pending, "pending"),
        (image.permanent, "permanent"),
    ]
    .into_iter()
    .filter_map(|(flag, name)| (flag == Some(true)).then_some(name))
    .collect();
    let hash = image
        .hash
        .as_ref()
        .map(ImageHash::to_string)
        .unwrap_or_default();
    format!(
        "slot {}: {} {hash} [{}]",
        image.slot,
        image.version,
        flags.join(", ")
    )
}
