//! Writes a sample MCUboot image: an unsigned image as `imgtool create --pad-header`
//! writes it, around a pseudo-random body that stands in for firmware.
//!
//! ```text
//! cargo run -p smp-mcuboot --example sample_image -- OUT VERSION SIZE
//! cargo run -p smp-mcuboot --example sample_image -- target/demo/app-1.2.3.bin 1.2.3 262144
//! ```
//!
//! - `OUT`: the file to write (its folder is created if missing; an existing file is
//!   replaced).
//! - `VERSION`: the image version, `major.minor.revision+build` as imgtool takes it, or
//!   `1.2.3.4`, `1.2.3`, `1.2`, `1`.
//! - `SIZE`: the body size in bytes (the firmware, without header and TLVs), at most
//!   4 GiB − 1.
//!
//! The body is [`smp_mcuboot::sample_body`] seeded with the version (major, minor,
//! revision and build packed into one `u64`), so the same arguments always give the same
//! bytes and the same hash, and two versions give two different images. It prints the
//! file, version, sizes and the image hash it wrote. `cargo xtask demo` uploads such an
//! image to the simulated device.

use std::path::Path;
use std::process::ExitCode;

use smp_mcuboot::{Image, ImageBuilder, ImageVersion, sample_body};

const USAGE: &str = "usage: sample_image OUT VERSION SIZE
  OUT      the image file to write
  VERSION  the image version, e.g. 1.2.3 or 1.2.3+4
  SIZE     the body (firmware) size in bytes, e.g. 262144";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sample_image: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let [out, version, size] = args else {
        if matches!(args, [flag] if flag == "-h" || flag == "--help") {
            println!("{USAGE}");
            return Ok(());
        }
        return Err(format!("expected 3 arguments, got {}\n{USAGE}", args.len()));
    };
    let version: ImageVersion = version.parse().map_err(|e| format!("bad VERSION: {e}"))?;
    let size: usize = size
        .parse()
        .ok()
        .filter(|&size| u32::try_from(size).is_ok())
        .ok_or_else(|| {
            format!(
                "bad SIZE `{size}`: expected a number of bytes from 0 to {}",
                u32::MAX
            )
        })?;

    let bytes = ImageBuilder::new(version).build(&sample_body(size, seed(version)));
    // The builder's own output always parses; this is the check a reader can trust.
    let image = Image::parse(&bytes).map_err(|e| format!("the built image is invalid: {e}"))?;
    image
        .verify()
        .map_err(|e| format!("the built image does not verify: {e}"))?;

    let out = Path::new(out);
    if let Some(dir) = out.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(out, &bytes).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!(
        "wrote {}: MCUboot image {}, {} bytes ({}-byte header area, {size}-byte body, TLVs), hash {}",
        out.display(),
        image.header.version,
        bytes.len(),
        image.header.header_size,
        hex(&image.computed_hash()),
    );
    Ok(())
}

/// The body's seed: the version's four parts packed into one `u64`.
fn seed(version: ImageVersion) -> u64 {
    u64::from(version.major) << 56
        | u64::from(version.minor) << 48
        | u64::from(version.revision) << 32
        | u64::from(version.build)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
