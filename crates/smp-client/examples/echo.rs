//! Echo: the smallest round trip to a device.
//!
//! ```text
//! cargo run -p smp-client --example echo -- 127.0.0.1:1337 "hello"
//! ```
//!
//! Connects over UDP (reading the device's MCUmgr parameters, which size every later
//! request to its buffers), sends the text and prints what came back and how long it took.

use std::process::ExitCode;
use std::time::Instant;

use smp_client::udp::UdpTarget;
use smp_client::{Client, ClientOptions, ErrorChain};

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(device), text) = (args.next(), args.next()) else {
        eprintln!("usage: echo DEVICE [TEXT]   (DEVICE: 192.0.2.1, 192.0.2.1:1337, [::1]:1337)");
        return ExitCode::from(2);
    };
    let text = text.unwrap_or_else(|| "hello".to_owned());
    match run(&device, &text).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("echo: {}", ErrorChain(&*err));
            ExitCode::FAILURE
        }
    }
}

async fn run(device: &str, text: &str) -> Result<(), Box<dyn std::error::Error>> {
    let target: UdpTarget = device.parse()?;
    let client = Client::connect_udp(target, ClientOptions::default()).await?;
    let started = Instant::now();
    // `echo` checks that the same text came back (and asks again if a damaged reply
    // did not); `client.request(&EchoRequest { d })` would return whatever came back.
    let echoed = client.echo(text).await?;
    println!("{device} echoed {echoed:?} in {:?}", started.elapsed());
    Ok(())
}
