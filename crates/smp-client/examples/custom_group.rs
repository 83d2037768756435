//! A request of your own group: application groups (ids 64 and up) get the same typed
//! messages as the built-in ones, written with [`smp_map!`](smp_client::smp_map).
//!
//! ```text
//! cargo run -p smp-client --example custom_group -- 127.0.0.1:1337
//! ```
//!
//! The firmware side is a handler registered for group 64 with Zephyr's
//! `mgmt_register_group`. A device without it answers `MGMT 8 ENOTSUP`, which the
//! example reports as such (the simulated device and Zephyr's `smp_svr` sample have no
//! group 64).

use std::process::ExitCode;

use smp_client::header::Op;
use smp_client::udp::UdpTarget;
use smp_client::{Client, ClientError, ClientOptions, ErrorChain, Request, smp_map};

/// The application's group id.
const LED_GROUP: u16 = 64;

smp_map! {
    /// Blink the LED `count` times (group 64, command 0, write).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct BlinkRequest {
        /// How often.
        "count" => pub count: u32,
        /// Milliseconds per blink; the firmware's default when absent.
        "period" => pub period: Option<u32>,
    }
}

smp_map! {
    /// The firmware's answer.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct BlinkResponse {
        /// Blinks now queued.
        "queued" => pub queued: u32,
    }
}

impl Request for BlinkRequest {
    const GROUP: u16 = LED_GROUP;
    const COMMAND: u8 = 0;
    const OP: Op = Op::Write;
    type Response = BlinkResponse;
}

#[tokio::main]
async fn main() -> ExitCode {
    let Some(device) = std::env::args().nth(1) else {
        eprintln!("usage: custom_group DEVICE");
        return ExitCode::from(2);
    };
    match run(&device).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("custom_group: {}", ErrorChain(&*err));
            ExitCode::FAILURE
        }
    }
}

async fn run(device: &str) -> Result<(), Box<dyn std::error::Error>> {
    let target: UdpTarget = device.parse()?;
    let client = Client::connect_udp(target, ClientOptions::default()).await?;
    let request = BlinkRequest {
        count: 3,
        period: Some(250),
    };
    println!(
        "sending {request:?}: {} bytes of CBOR",
        smp_client::minicbor::len(&request)
    );
    match client.request(&request).await {
        Ok(reply) => println!("the device queued {} blinks", reply.queued),
        // Device errors are data: match on them like any other value.
        Err(ClientError::Device(err)) if err.is_not_supported() => {
            println!("the device has no group {LED_GROUP}: it answered {err}");
        }
        Err(err) => return Err(err.into()),
    }
    Ok(())
}
