//! How one datagram becomes replies: frames split off the datagram, each request
//! run by its group's handler on the device, each outcome framed as Zephyr replies.

use smp_proto::header::{self, Header, group};
use tracing::{debug, info};

use crate::device::Device;
use crate::groups;
use crate::reply::{self, Outcome, mgmt};
use crate::request::{Ctx, Incoming};

/// Processes one received datagram (already cut to the MTU) and returns its
/// replies, one per frame, in order. With `refuse`, requests are not run but
/// answered with that MGMT code (ENOMEM when no buffer is left for the reply).
pub(crate) fn process_datagram(
    dev: &mut Device,
    datagram: &[u8],
    refuse: Option<u16>,
    ctx: &mut Ctx,
) -> Vec<Vec<u8>> {
    let mut replies = Vec::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        let (header, payload, next, refused) = match split(rest) {
            Split::Frame {
                header,
                payload,
                next,
                refused,
            } => (header, payload, next, refused.or(refuse)),
            Split::Corrupt(header) => {
                debug!(
                    ?header,
                    len = rest.len(),
                    "frame length does not match the datagram"
                );
                replies.push(reply::frame(
                    &header,
                    &Outcome::Mgmt(mgmt::ECORRUPT),
                    false,
                    translate,
                ));
                break;
            }
            Split::Unusable(why) => {
                debug!(%why, len = rest.len(), "dropping the rest of a datagram");
                break;
            }
        };
        rest = next;
        ctx.busy += dev.config.delays.per_request;
        let outcome = match refused {
            None => {
                dev.requests += 1;
                run(dev, &header, payload, ctx)
            }
            Some(rc) => {
                debug!(?header, rc, "request refused");
                Outcome::Mgmt(rc)
            }
        };
        log_request(&header, payload, &outcome);
        let stop = matches!(outcome, Outcome::Mgmt(_));
        replies.push(reply::frame(
            &header,
            &outcome,
            dev.config.legacy_rc,
            translate,
        ));
        if stop {
            break;
        }
    }
    replies
}

/// Runs one request.
fn run(dev: &mut Device, header: &Header, payload: &[u8], ctx: &mut Ctx) -> Outcome {
    let request = Incoming {
        op: header.op,
        command: header.command,
        payload,
    };
    match header.group {
        group::OS => groups::os::handle(dev, &request, ctx),
        group::IMAGE => groups::image::handle(dev, &request, ctx),
        group::STAT => groups::stat::handle(dev, &request),
        group::SETTINGS => groups::settings::handle(dev, &request),
        group::FS => groups::fs::handle(dev, &request, ctx),
        group::SHELL => groups::shell::handle(dev, &request),
        group::ENUM => groups::enumeration::handle(&request),
        group::ZEPHYR => groups::zephyr::handle(dev, &request, ctx),
        _ => Outcome::Mgmt(mgmt::ENOTSUP),
    }
}

enum Split<'a> {
    /// A frame: its header, its payload (read to the end of the datagram, as Zephyr
    /// decodes it), the rest of the datagram after the header's length, and the
    /// MGMT code the header alone earns (a version or op Zephyr refuses).
    Frame {
        header: Header,
        payload: &'a [u8],
        next: &'a [u8],
        refused: Option<u16>,
    },
    /// The header announces more than the datagram holds.
    Corrupt(Header),
    Unusable(String),
}

/// Splits the next frame off a datagram.
fn split(rest: &[u8]) -> Split<'_> {
    let Some(raw) = rest.get(..header::SIZE) else {
        return Split::Unusable(format!("{} bytes cannot hold a header", rest.len()));
    };
    // Zephyr answers a version newer than 2 with UNSUPPORTED_TOO_NEW in its own
    // version, and an op other than read or write with ENOTSUP in a write reply.
    let mut patched = [0u8; header::SIZE];
    patched.copy_from_slice(raw);
    let (op, version) = (raw[0] & 0x07, (raw[0] >> 3) & 0x03);
    let mut refused = None;
    if op != 0 && op != 2 {
        patched[0] = (patched[0] & !0x07) | 0x02;
        refused = Some(mgmt::ENOTSUP);
    }
    if version > 1 {
        patched[0] = (patched[0] & !0x18) | 0x08;
        refused = Some(mgmt::UNSUPPORTED_TOO_NEW);
    }
    let header = match Header::decode(&patched) {
        Ok(header) => header,
        Err(e) => return Split::Unusable(e.to_string()),
    };
    let end = header.frame_len();
    if end > rest.len() {
        return Split::Corrupt(header);
    }
    Split::Frame {
        header,
        payload: &rest[header::SIZE..],
        next: &rest[end..],
        refused,
    }
}

/// The MGMT code a version 1 client gets for a group error, as Zephyr 4.4.0's
/// per-group translation functions map them (measured on the real server where it has
/// the group; the image group follows Zephyr's `img_mgmt` table).
pub(crate) fn translate(group: u16, rc: u16) -> u16 {
    match (group, rc) {
        (group::OS, 2) => mgmt::EINVAL,
        (group::OS, 3) => mgmt::ENOENT,
        (group::OS, _) => mgmt::EUNKNOWN,
        // `img_mgmt_translate_error_code`: anything not listed (hash not found, bad
        // magic, too large, overrun, test-to-active denied...) is EUNKNOWN.
        (group::IMAGE, 3 | 4) => mgmt::ENOENT,
        (group::IMAGE, 9 | 27 | 28) => mgmt::EBADSTATE,
        (group::IMAGE, 15) => mgmt::ENOMEM,
        (group::IMAGE, 14 | 19..=22 | 24 | 25) => mgmt::EINVAL,
        (group::STAT, 2 | 3) => mgmt::ENOENT,
        (group::STAT, 4) => mgmt::EINVAL,
        (group::SETTINGS, 2) => mgmt::EINVAL,
        (group::SETTINGS, 3 | 4) => mgmt::ENOENT,
        (group::FS, 2 | 13) => mgmt::EINVAL,
        (group::FS, 3 | 14) => mgmt::ENOENT,
        (group::SHELL, _) => mgmt::EINVAL,
        _ => mgmt::EUNKNOWN,
    }
}

fn log_request(header: &Header, payload: &[u8], outcome: &Outcome) {
    let group = header::group::name(header.group).unwrap_or("user");
    let result = match outcome {
        Outcome::Ok(_) => "ok".to_owned(),
        Outcome::Mgmt(rc) => format!("rc {rc}"),
        Outcome::Group(rc) | Outcome::GroupLen(rc, _) => format!("{group} error {rc}"),
    };
    info!(
        op = ?header.op,
        group,
        command = header.command,
        seq = header.sequence,
        len = payload.len(),
        result,
        "request"
    );
}
