//! `cargo xtask examples`: runs every example of `crates/smp-client/examples/` against a
//! simulated device, so that they cannot rot.
//!
//! Builds the examples and `smp-sim`, writes a sample MCUboot image (the `sample_image`
//! example of `smp-mcuboot`), starts `smp-sim` on a free port of 127.0.0.1 (its log in
//! `target/examples/smp-sim.log`) and runs, in order: `echo`, `upload_image` of the
//! sample image, `image_state` (list), `image_state test HASH` with the hash the listing
//! printed for slot 1, `image_state confirm` and `custom_group`. Each must exit 0;
//! their output is shown as it comes. An example added to the folder but not run here
//! fails the task.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::sim::start_sim;
use crate::util::{self, Result};

/// The examples this task runs; every file in the folder must be one of them.
const EXAMPLES: [&str; 4] = ["custom_group", "echo", "image_state", "upload_image"];

pub(crate) fn run() -> Result {
    let root = util::root();
    let target = util::target_dir();
    let dir = target.join("examples");
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    check_all_listed(&root.join("crates/smp-client/examples"))?;

    util::heading("examples: build the smp-client examples and the simulated device");
    util::run(util::cargo().args([
        "build",
        "-p",
        "smp-client",
        "--examples",
        "-p",
        "smp-sim",
        "--bin",
        "smp-sim",
    ]))?;
    let image = dir.join("app-1.2.3.bin");
    let image_arg = image.to_string_lossy().into_owned();
    util::run(&mut util::sample_image(&image, "1.2.3", "65536"))?;

    let log = dir.join("smp-sim.log");
    let mut sim_command = Command::new(target.join("debug/smp-sim"));
    sim_command.args(["--addr", "127.0.0.1:0"]);
    let (_sim, addr) = start_sim(sim_command, &log, "examples")?;
    let device = addr.to_string();
    let example = |name: &str, args: &[&str]| -> Result<String> {
        let mut command = Command::new(target.join("debug/examples").join(name));
        command
            .arg(&device)
            .args(args)
            .current_dir(&root)
            .stdin(Stdio::null());
        util::heading(&format!("examples: {}", util::show(&command)));
        let output = util::capture(&mut command)
            .map_err(|e| format!("{e}\n  the simulated device's log is {}", log.display()))?;
        print!("{output}");
        Ok(output)
    };

    example("echo", &["hello from the examples"])?;
    example("upload_image", &[&image_arg])?;
    let listing = example("image_state", &[])?;
    let hash = slot_hash(&listing, 1)
        .ok_or_else(|| format!("image_state listed no hash for slot 1:\n{listing}"))?;
    example("image_state", &["test", &hash])?;
    example("image_state", &["confirm"])?;
    example("custom_group", &[])?;
    println!("\nexamples: all {} ran against smp-sim", EXAMPLES.len());
    Ok(())
}

/// Fails when the folder holds an example this task does not run.
fn check_all_listed(folder: &Path) -> Result {
    let entries =
        fs::read_dir(folder).map_err(|e| format!("cannot list {}: {e}", folder.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot list {}: {e}", folder.display()))?
            .path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if !EXAMPLES.contains(&stem) {
            return Err(format!(
                "{} is not run by `cargo xtask examples`: add it to EXAMPLES in xtask/src/examples.rs",
                path.display()
            ));
        }
    }
    Ok(())
}

/// The hash `image_state` printed for `slot` (`slot 1: 1.2.3 HASH [...]`).
fn slot_hash(listing: &str, slot: u32) -> Option<String> {
    let prefix = format!("slot {slot}: ");
    let line = listing.lines().find_map(|l| l.strip_prefix(&prefix))?;
    let hash = line.split_whitespace().nth(1)?;
    hash.bytes()
        .all(|b| b.is_ascii_hexdigit())
        .then(|| hash.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_hash_of_a_slot() {
        let listing = "slot 0: 1.0.0 e64c [active, confirmed]\nslot 1: 1.2.3 9e29 []\n";
        assert_eq!(slot_hash(listing, 1).as_deref(), Some("9e29"));
        assert_eq!(slot_hash(listing, 0).as_deref(), Some("e64c"));
        assert_eq!(slot_hash(listing, 2), None);
        assert_eq!(slot_hash("slot 1: 1.2.3 [pending]\n", 1), None);
    }
}
