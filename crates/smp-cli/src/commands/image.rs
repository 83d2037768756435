//! `smp image ...`: image management (group 1), and `image info`, which reads an image
//! file without a device.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};
use smp_client::messages::image::{
    EraseRequest, ImageState, SetStateRequest, SlotInfoRequest, SlotInfoResponse, StateRequest,
    StateResponse,
};
use smp_client::proto::ImageHash;
use smp_mcuboot::Image;

use super::{Ctx, DeviceClient, path_text, read_file};
use crate::cli::{ImageCommand, UploadArgs};
use crate::error::{CliError, ListedImage};
use crate::output::{self, Outcome, hex};
use crate::progress::Transfer;

/// Runs an `image` command.
pub(super) async fn run(command: &ImageCommand, ctx: &Ctx<'_>) -> Result<Outcome, CliError> {
    match command {
        ImageCommand::Info { file } => info(file),
        ImageCommand::Upload(args) => upload(args, ctx).await,
        ImageCommand::List => {
            let client = ctx.client().await?;
            Ok(states(&client.request(&StateRequest).await?, None))
        }
        ImageCommand::Test { hash } => {
            let client = ctx.client().await?;
            let hash = resolve_hash(&client, hash).await?;
            let note = format!("image {hash} will be tested on the next boot");
            let reply = client
                .request(&SetStateRequest {
                    hash: Some(hash),
                    confirm: false,
                })
                .await?;
            Ok(states(&reply, Some(&note)))
        }
        ImageCommand::Confirm { hash } => {
            let client = ctx.client().await?;
            let hash = match hash {
                Some(hash) => Some(resolve_hash(&client, hash).await?),
                None => None,
            };
            let note = match &hash {
                Some(hash) => format!("image {hash} confirmed"),
                None => "running image confirmed".to_owned(),
            };
            let reply = client
                .request(&SetStateRequest {
                    hash,
                    confirm: true,
                })
                .await?;
            Ok(states(&reply, Some(&note)))
        }
        ImageCommand::Erase { slot } => {
            let client = ctx.client().await?;
            client.request(&EraseRequest { slot: *slot }).await?;
            let human = match slot {
                Some(slot) => format!("slot {slot} erased"),
                None => "the device's default slot erased".to_owned(),
            };
            Ok(Outcome::new(json!({ "ok": true, "slot": slot }), human))
        }
        ImageCommand::Slots => {
            let client = ctx.client().await?;
            Ok(slots(&client.request(&SlotInfoRequest).await?))
        }
    }
}

/// Digits from which on a hash counts as whole (a SHA-256): sent as given, for the
/// device to find or refuse.
const FULL_HASH_DIGITS: usize = 64;

/// The hash `digits` (lower-case hex, from the command line) names: the whole hash
/// itself, or the one hash of the device's images that starts with those digits, as git
/// resolves a short commit hash. No image or several different ones are a usage error
/// that lists the candidates.
async fn resolve_hash(client: &DeviceClient, digits: &str) -> Result<ImageHash, CliError> {
    if digits.len() >= FULL_HASH_DIGITS {
        if let Ok(hash) = digits.parse::<ImageHash>() {
            return Ok(hash);
        }
    }
    let images = client.image_state().await?;
    let (hash, listed) = pick_hash(&images, digits);
    hash.cloned().ok_or_else(|| {
        let listed_image = |s: &ImageState| ListedImage {
            image: s.image.unwrap_or(0),
            slot: s.slot,
            hash: s.hash.as_ref().map(ToString::to_string).unwrap_or_default(),
        };
        CliError::HashPrefix {
            prefix: digits.to_owned(),
            matches: listed.into_iter().map(listed_image).collect(),
            listed: images
                .iter()
                .filter(|s| s.hash.is_some())
                .map(listed_image)
                .collect(),
        }
    })
}

/// The one hash among `images` that starts with `digits`, or (when there is none, or
/// several different ones) the images whose hash does. One image listed in two slots
/// (uploaded again, say) is one hash.
fn pick_hash<'a>(
    images: &'a [ImageState],
    digits: &str,
) -> (Option<&'a ImageHash>, Vec<&'a ImageState>) {
    let matching: Vec<&ImageState> = images
        .iter()
        .filter(|s| s.hash.as_ref().is_some_and(|h| h.starts_with_hex(digits)))
        .collect();
    let mut hashes = matching.iter().filter_map(|s| s.hash.as_ref());
    match hashes.next() {
        Some(first) if hashes.all(|h| h == first) => (Some(first), matching),
        _ => (None, matching),
    }
}

/// One image slot's state as JSON (`IMAGE_STATE`).
fn state_json(state: &ImageState) -> Value {
    json!({
        "image": state.image.unwrap_or(0),
        "slot": state.slot,
        "version": state.version,
        "hash": state.hash.as_deref().map(hex),
        "active": state.active.unwrap_or(false),
        "confirmed": state.confirmed.unwrap_or(false),
        "pending": state.pending.unwrap_or(false),
        "permanent": state.permanent.unwrap_or(false),
        "bootable": state.bootable.unwrap_or(false),
    })
}

/// One image slot's state as text: `image 0 slot 1: version 1.2.3 [pending, bootable]`
/// and the hash on the next line.
fn state_text(state: &ImageState) -> String {
    let flags: Vec<&str> = [
        (state.active, "active"),
        (state.confirmed, "confirmed"),
        (state.pending, "pending"),
        (state.permanent, "permanent"),
        (state.bootable, "bootable"),
    ]
    .into_iter()
    .filter(|(set, _)| set.unwrap_or(false))
    .map(|(_, name)| name)
    .collect();
    let mut out = format!(
        "image {} slot {}: version {}",
        state.image.unwrap_or(0),
        state.slot,
        state.version
    );
    if !flags.is_empty() {
        let _ = write!(out, " [{}]", flags.join(", "));
    }
    if let Some(hash) = &state.hash {
        let _ = write!(out, "\n  hash {}", hex(hash));
    }
    out
}

/// The answer of `image list`, `test` and `confirm`: every slot's state, after `note`.
fn states(reply: &StateResponse, note: Option<&str>) -> Outcome {
    let json = json!({
        "images": reply.images.iter().map(state_json).collect::<Vec<_>>(),
        "split_status": reply.split_status,
    });
    let mut human = String::new();
    if let Some(note) = note {
        human.push_str(note);
        human.push('\n');
    }
    for state in &reply.images {
        human.push_str(&state_text(state));
        human.push('\n');
    }
    if reply.images.is_empty() {
        human.push_str("no images\n");
    }
    Outcome::new(json, human)
}

/// The answer of `image slots`.
fn slots(reply: &SlotInfoResponse) -> Outcome {
    let json_images: Vec<Value> = reply
        .images
        .iter()
        .map(|image| {
            let slots: Vec<Value> = image
                .slots
                .iter()
                .map(|s| json!({ "slot": s.slot, "size": s.size, "upload_image_id": s.upload_image_id }))
                .collect();
            json!({ "image": image.image, "slots": slots, "max_image_size": image.max_image_size })
        })
        .collect();
    let mut human = String::new();
    for image in &reply.images {
        let _ = write!(human, "image {}", image.image);
        if let Some(max) = image.max_image_size {
            let _ = write!(human, " (largest image {})", output::size(max));
        }
        human.push('\n');
        for slot in &image.slots {
            let _ = write!(human, "  slot {}: {}", slot.slot, output::size(slot.size));
            if let Some(id) = slot.upload_image_id {
                let _ = write!(human, ", upload as image {id}");
            }
            human.push('\n');
        }
    }
    if reply.images.is_empty() {
        human.push_str("no slots\n");
    }
    Outcome::new(json!({ "images": json_images }), human)
}

/// Parses `data` as an MCUboot image and checks its hash TLV.
pub(super) fn checked_image(path: &Path, data: &[u8]) -> Result<Image, CliError> {
    let invalid = |e: smp_mcuboot::ImageError| CliError::Image {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let image = Image::parse(data).map_err(invalid)?;
    image.verify().map_err(invalid)?;
    Ok(image)
}

/// `image upload`: check the file, upload it with a progress bar, report the new slot.
async fn upload(args: &UploadArgs, ctx: &Ctx<'_>) -> Result<Outcome, CliError> {
    let data = read_file(&args.file)?;
    let len = data.len() as u64;
    let name = args.file.display();
    let (version, image_hash) = if args.raw {
        ctx.out
            .note(&format!("{name}: {} (raw, not checked)", output::size(len)));
        // A raw file may still be an image: its hash finds the slot afterwards.
        let hash = Image::parse(&data).ok().and_then(|i| i.hash());
        (None, hash)
    } else {
        let image = checked_image(&args.file, &data)?;
        let version = image.header.version.to_string();
        ctx.out.note(&format!(
            "{name}: MCUboot image version {version}, {}",
            output::size(len)
        ));
        (Some(version), image.hash())
    };

    let client = ctx.client().await?;
    let image_number = args.image.unwrap_or(0);
    let options = ctx
        .upload_options()
        .with_image(Some(image_number))
        .with_upgrade(args.upgrade)
        .with_window(args.window);
    let transfer = Transfer::start("upload", Some(len), &ctx.progress);
    let summary = client
        .upload_image(&data, &options, |p| transfer.update(p))
        .await?;
    let elapsed = transfer.finish();

    let state = client.request(&StateRequest).await?;
    let slot = uploaded_slot(&state, image_hash.as_ref(), image_number);
    let running = image_hash
        .as_ref()
        .and_then(|hash| running_slot(&state, hash, image_number));

    let json = json!({
        "file": path_text(&args.file),
        "size": summary.len,
        "version": version,
        "image_hash": image_hash.as_ref().map(|h| hex(h)),
        "sha256": hex(&summary.sha256),
        "image": image_number,
        "upgrade": args.upgrade,
        "resumed_at": summary.resumed_at,
        "chunks": summary.chunks,
        "max_in_flight": summary.max_in_flight,
        "matched": summary.matched,
        "elapsed_s": output::seconds(elapsed),
        "bytes_per_second": output::bytes_per_second(summary.len, elapsed),
        "slot": slot.map(state_json),
        "already_running": running.is_some(),
    });
    let mut human = String::new();
    if summary.resumed_at > 0 {
        let _ = writeln!(
            human,
            "resumed an interrupted upload at offset {}",
            summary.resumed_at
        );
    }
    human.push_str(&output::transfer_summary("uploaded", summary.len, elapsed));
    human.push('\n');
    match slot {
        Some(slot) => {
            human.push_str("now in ");
            human.push_str(&state_text(slot));
        }
        None => human.push_str("the device does not list the uploaded image"),
    }
    if let Some(running) = running {
        let _ = write!(
            human,
            "\nthis image is already running, from image {} slot {}",
            running.image.unwrap_or(0),
            running.slot
        );
    }
    Ok(Outcome::new(json, human))
}

/// The slot the upload wrote: an inactive slot of the image number it went to (the
/// secondary slot; with direct-XIP whichever does not run), the one listing the image's
/// hash when it is known. The running slot may list the same hash, when the image
/// uploaded is the one running: that is not where the data went.
fn uploaded_slot<'a>(
    state: &'a StateResponse,
    hash: Option<&[u8; 32]>,
    image: u32,
) -> Option<&'a ImageState> {
    let mut written = state
        .images
        .iter()
        .filter(|s| s.image.unwrap_or(0) == image && !s.active.unwrap_or(false));
    match hash {
        Some(hash) => written.find(|s| s.hash.as_deref() == Some(hash.as_slice())),
        None => written.next(),
    }
}

/// The active slot of image number `image`, when it runs the image with `hash`.
fn running_slot<'a>(
    state: &'a StateResponse,
    hash: &[u8; 32],
    image: u32,
) -> Option<&'a ImageState> {
    state.images.iter().find(|s| {
        s.image.unwrap_or(0) == image
            && s.active.unwrap_or(false)
            && s.hash.as_deref() == Some(hash.as_slice())
    })
}

/// `image info`: everything the image file says about itself.
fn info(path: &Path) -> Result<Outcome, CliError> {
    let data = read_file(path)?;
    let image = Image::parse(&data).map_err(|e| CliError::Image {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    Ok(info_outcome(path, data.len() as u64, &image))
}

/// The answer of `image info` for a parsed image.
fn info_outcome(path: &Path, file_size: u64, image: &Image) -> Outcome {
    let header = &image.header;
    let flag_names = smp_mcuboot::flags::names(header.flags);
    let verify_error = image.verify().err().map(|e| e.to_string());
    let hash = image.hash();
    let computed = image.computed_hash();
    let tlvs: Vec<Value> = image
        .tlvs
        .iter()
        .map(|t| {
            json!({
                "kind": t.kind, "name": smp_mcuboot::tlv::name(t.kind), "len": t.data.len(),
                "protected": t.protected, "data": hex(&t.data),
            })
        })
        .collect();
    let json = json!({
        "file": path_text(path),
        "file_size": file_size,
        "version": header.version.to_string(),
        "load_addr": header.load_addr,
        "header_size": header.header_size,
        "protected_tlv_size": header.protected_tlv_size,
        "image_size": header.image_size,
        "flags": header.flags,
        "flag_names": flag_names,
        "hash": hash.as_ref().map(|h| hex(h)),
        "computed_hash": hex(&computed),
        "hash_valid": verify_error.is_none(),
        "verify_error": verify_error,
        "tlvs": tlvs,
    });

    let mut human = String::new();
    let mut line = |key: &str, value: String| {
        let _ = writeln!(human, "{key:<19}{value}");
    };
    line(
        "file:",
        format!("{}, {}", path.display(), output::size(file_size)),
    );
    line("version:", header.version.to_string());
    line("load address:", format!("{:#010x}", header.load_addr));
    line("header size:", output::size(header.header_size.into()));
    line("image size:", output::size(header.image_size.into()));
    line(
        "protected TLVs:",
        output::size(header.protected_tlv_size.into()),
    );
    let flags = if flag_names.is_empty() {
        format!("{:#010x}", header.flags)
    } else {
        format!("{:#010x} ({})", header.flags, flag_names.join(", "))
    };
    line("flags:", flags);
    let hash_line = match (&hash, &verify_error) {
        (Some(h), None) => format!("{} (valid)", hex(h)),
        (Some(h), Some(e)) => format!("{} (INVALID: {e})", hex(h)),
        (None, _) => "none".to_owned(),
    };
    line("hash:", hash_line);
    if verify_error.is_some() {
        line("computed hash:", hex(&computed));
    }
    let _ = writeln!(human, "TLVs:");
    let rows: Vec<Vec<String>> = image
        .tlvs
        .iter()
        .map(|t| {
            let mut value = output::hex_abbrev(&t.data, 32);
            if t.protected {
                value.push_str(" (protected)");
            }
            vec![
                format!("  {:#06x}", t.kind),
                smp_mcuboot::tlv::name(t.kind).unwrap_or("?").to_owned(),
                format!("{} B", t.data.len()),
                value,
            ]
        })
        .collect();
    for row in output::table(&["", "", "", ""], &rows).lines().skip(1) {
        human.push_str(row);
        human.push('\n');
    }
    Outcome::new(json, human)
}

#[cfg(test)]
mod tests {
    use smp_client::messages::build;
    use smp_client::messages::image::{SlotInfo, SlotInfoImage};
    use smp_mcuboot::{ImageBuilder, ImageVersion};

    use super::*;

    fn state(slot: u32, hash: u8, active: bool) -> ImageState {
        build(|v: &mut ImageState| {
            v.hash = Some(vec![hash; 32].into());
            v.slot = slot;
            v.image = None;
            v.active = Some(active);
            v.pending = None;
            v.version = format!("1.0.{slot}");
            v.bootable = Some(true);
            v.confirmed = active.then_some(true);
            v.permanent = None;
        })
    }

    #[test]
    fn states_render() {
        let reply = build(|v: &mut StateResponse| {
            v.images = vec![state(0, 0xaa, true), state(1, 0xbb, false)];
            v.split_status = None;
        });
        let out = states(&reply, Some("note"));
        assert_eq!(
            out.json["images"][0],
            json!({"image": 0, "slot": 0, "version": "1.0.0", "hash": "aa".repeat(32),
                   "active": true, "confirmed": true, "pending": false, "permanent": false,
                   "bootable": true})
        );
        assert_eq!(out.json["split_status"], Value::Null);
        assert_eq!(
            out.human,
            format!(
                "note\nimage 0 slot 0: version 1.0.0 [active, confirmed, bootable]\n  hash {}\n\
                 image 0 slot 1: version 1.0.1 [bootable]\n  hash {}\n",
                "aa".repeat(32),
                "bb".repeat(32)
            )
        );
        let empty = states(&StateResponse::default(), None);
        assert_eq!(empty.human, "no images\n");
    }

    #[test]
    fn finds_the_uploaded_slot() {
        let reply = build(|v: &mut StateResponse| {
            v.images = vec![state(0, 0xaa, true), state(1, 0xbb, false)];
            v.split_status = None;
        });
        let found = uploaded_slot(&reply, Some(&[0xbb; 32]), 0).map(|s| s.slot);
        assert_eq!(found, Some(1));
        assert!(uploaded_slot(&reply, Some(&[0xcc; 32]), 0).is_none());
        let found = uploaded_slot(&reply, None, 0).map(|s| s.slot);
        assert_eq!(found, Some(1));
        assert!(uploaded_slot(&reply, None, 1).is_none());
        assert!(running_slot(&reply, &[0xbb; 32], 0).is_none());
    }

    #[test]
    fn the_running_image_uploaded_again_is_found_in_the_slot_written() {
        // Both slots list the same hash: the data went to the inactive one.
        let reply = build(|v: &mut StateResponse| {
            v.images = vec![state(0, 0xaa, true), state(1, 0xaa, false)];
            v.split_status = None;
        });
        let found = uploaded_slot(&reply, Some(&[0xaa; 32]), 0).map(|s| s.slot);
        assert_eq!(found, Some(1));
        let running = running_slot(&reply, &[0xaa; 32], 0).map(|s| s.slot);
        assert_eq!(running, Some(0));
        // Image 1 of a multi-image device runs something else.
        assert!(running_slot(&reply, &[0xaa; 32], 1).is_none());
    }

    #[test]
    fn short_hashes_pick_one_image() {
        let mut images = vec![state(0, 0xaa, true), state(1, 0xab, false)];
        let pick = |images: &[ImageState], digits: &str| {
            let (hash, matching) = pick_hash(images, digits);
            (
                hash.map(ToString::to_string),
                matching.iter().map(|s| s.slot).collect::<Vec<_>>(),
            )
        };
        assert_eq!(pick(&images, "aaaa"), (Some("aa".repeat(32)), vec![0]));
        assert_eq!(pick(&images, "abab"), (Some("ab".repeat(32)), vec![1]));
        // Ambiguous: both start with "a"; unknown: none with "cc".
        assert_eq!(pick(&images, "a"), (None, vec![0, 1]));
        assert_eq!(pick(&images, "cccc"), (None, vec![]));
        // The same image in both slots is one hash.
        images[1] = state(1, 0xaa, false);
        assert_eq!(pick(&images, "aaaa"), (Some("aa".repeat(32)), vec![0, 1]));
    }

    #[test]
    fn slots_render() {
        let reply = build(|v: &mut SlotInfoResponse| {
            v.images = vec![build(|v: &mut SlotInfoImage| {
                v.image = 0;
                v.slots = vec![
                    build(|v: &mut SlotInfo| {
                        v.size = 0x40000;
                        v.slot = 0;
                        v.upload_image_id = None;
                    }),
                    build(|v: &mut SlotInfo| {
                        v.size = 0x40000;
                        v.slot = 1;
                        v.upload_image_id = Some(0);
                    }),
                ];
                v.max_image_size = None;
            })];
        });
        let out = slots(&reply);
        assert_eq!(out.json["images"][0]["slots"][1]["upload_image_id"], 0);
        assert_eq!(out.json["images"][0]["max_image_size"], Value::Null);
        assert_eq!(
            out.human,
            "image 0\n  slot 0: 256.00 KiB (262144 B)\n  slot 1: 256.00 KiB (262144 B), upload as image 0\n"
        );
    }

    #[test]
    fn image_info_of_a_built_image() {
        let bytes = ImageBuilder::new(ImageVersion::new(1, 2, 3, 4)).build(&[0x5a; 100]);
        let image = Image::parse(&bytes).expect("a built image parses");
        let out = info_outcome(Path::new("a.bin"), bytes.len() as u64, &image);
        assert_eq!(out.json["version"], "1.2.3.4");
        assert_eq!(out.json["image_size"], 100);
        assert_eq!(out.json["hash_valid"], true);
        assert_eq!(out.json["verify_error"], Value::Null);
        assert_eq!(out.json["hash"], out.json["computed_hash"]);
        let tlvs = out.json["tlvs"].as_array().expect("tlvs");
        assert!(tlvs.iter().any(|t| t["name"] == "SHA256" && t["len"] == 32));
        assert!(
            out.human.contains("version:           1.2.3.4\n"),
            "{}",
            out.human
        );
        assert!(out.human.contains("(valid)"), "{}", out.human);
        assert!(out.human.contains("  0x0010  SHA256"), "{}", out.human);
    }

    #[test]
    fn image_info_reports_a_bad_hash() {
        let mut bytes = ImageBuilder::new(ImageVersion::new(1, 0, 0, 0)).build(&[1; 64]);
        // The body starts after the 0x200-byte header area.
        bytes[0x200] ^= 0xff;
        let image = Image::parse(&bytes).expect("still parses");
        let out = info_outcome(Path::new("a.bin"), bytes.len() as u64, &image);
        assert_eq!(out.json["hash_valid"], false);
        assert!(out.json["verify_error"].is_string());
        assert!(out.human.contains("INVALID"), "{}", out.human);
        assert!(checked_image(Path::new("a.bin"), &bytes).is_err());
        assert!(checked_image(Path::new("a.bin"), b"not an image at all, no").is_err());
    }
}
