//! The device: its state, and how one datagram becomes replies.

use std::time::{Duration, Instant};

use minicbor::Decode;
use smp_client::header::{self, Header, HeaderError, Op, group};
use tracing::{debug, info};

use crate::config::SimConfig;
use crate::groups::{self, fs::FileSystem, image::Images, settings::Settings};
use crate::reply::{self, Outcome, mgmt};

/// Work done while processing one request, beyond its reply.
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    /// How long the work queue is busy with it (erase, flash writes...).
    pub(crate) busy: Duration,
    /// The device reboots once the reply is sent.
    pub(crate) reset_after_reply: bool,
}

impl Ctx {
    /// Adds the time `bytes` written to flash take.
    pub(crate) fn wrote(&mut self, bytes: usize, per_kib: Duration) {
        self.busy += per_kib.mul_f64(bytes as f64 / 1024.0);
    }
}

/// Everything the device keeps; one work queue owns it.
#[derive(Debug)]
pub(crate) struct Device {
    pub(crate) config: SimConfig,
    pub(crate) images: Images,
    pub(crate) fs: FileSystem,
    pub(crate) settings: Settings,
    pub(crate) booted: Instant,
    /// Seconds between the device's clock and the host's, once set by `datetime`.
    pub(crate) clock_offset: Option<i64>,
    /// Requests processed since boot (the `smp_svr_stats` counter).
    pub(crate) requests: u64,
}

impl Device {
    pub(crate) fn new(config: SimConfig) -> std::io::Result<Self> {
        Ok(Self {
            images: Images::new(&config)?,
            fs: FileSystem::new(config.fs_root.clone()),
            settings: Settings::default(),
            booted: Instant::now(),
            clock_offset: None,
            requests: 0,
            config,
        })
    }

    /// The device reboots: RAM state is lost, the bootloader swaps a pending image.
    pub(crate) fn reboot(&mut self) {
        info!("device reboots");
        self.images.reboot();
        self.fs.close();
        self.booted = Instant::now();
        self.clock_offset = None;
        self.requests = 0;
    }

    /// Processes one received datagram (already cut to the MTU) and returns its
    /// replies, one per frame, in order. With `refuse`, requests are not run but
    /// answered with that MGMT code (ENOMEM when no buffer is left for the reply).
    pub(crate) fn process_datagram(
        &mut self,
        datagram: &[u8],
        refuse: Option<u16>,
        ctx: &mut Ctx,
    ) -> Vec<Vec<u8>> {
        let mut replies = Vec::new();
        let mut rest = datagram;
        while !rest.is_empty() {
            let (header, payload, next) = match split(rest) {
                Split::Frame(header, payload, next) => (header, payload, next),
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
            ctx.busy += self.config.delays.per_request;
            let outcome = match refuse {
                None => {
                    self.requests += 1;
                    self.run(&header, payload, ctx)
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
                self.config.legacy_rc,
                translate,
            ));
            if stop {
                break;
            }
        }
        replies
    }

    /// Runs one request.
    fn run(&mut self, header: &Header, payload: &[u8], ctx: &mut Ctx) -> Outcome {
        if header.op.is_response() {
            return Outcome::Mgmt(mgmt::EINVAL);
        }
        if !is_map(payload) {
            return Outcome::Mgmt(mgmt::EINVAL);
        }
        let request = Incoming {
            op: header.op,
            command: header.command,
            payload,
        };
        match header.group {
            group::OS => groups::os::handle(self, &request, ctx),
            group::IMAGE => groups::image::handle(self, &request, ctx),
            group::STAT => groups::stat::handle(self, &request),
            group::SETTINGS => groups::settings::handle(self, &request),
            group::FS => groups::fs::handle(self, &request, ctx),
            group::SHELL => groups::shell::handle(self, &request),
            group::ENUM => groups::enumeration::handle(&request),
            group::ZEPHYR => groups::zephyr::handle(self, &request, ctx),
            _ => Outcome::Mgmt(mgmt::ENOTSUP),
        }
    }
}

/// A request as a handler sees it.
#[derive(Debug)]
pub(crate) struct Incoming<'a> {
    pub(crate) op: Op,
    pub(crate) command: u8,
    pub(crate) payload: &'a [u8],
}

impl Incoming<'_> {
    /// Decodes the payload as `T`; a payload of the wrong shape is `EINVAL`, as
    /// Zephyr's zcbor decoding answers.
    pub(crate) fn decode<'b, T: Decode<'b, ()>>(&'b self) -> Result<T, Outcome> {
        minicbor::decode(self.payload).map_err(|e| {
            debug!(%e, "request payload of the wrong shape");
            Outcome::Mgmt(mgmt::EINVAL)
        })
    }

    pub(crate) fn is_read(&self) -> bool {
        self.op == Op::Read
    }
}

enum Split<'a> {
    Frame(Header, &'a [u8], &'a [u8]),
    /// The header announces more than the datagram holds.
    Corrupt(Header),
    Unusable(String),
}

/// Splits the next frame off a datagram.
fn split(rest: &[u8]) -> Split<'_> {
    let header = match Header::decode(rest) {
        Ok(header) => header,
        // A version newer than 2: Zephyr answers with its own version, so read the
        // rest of the header as if it were version 2.
        Err(HeaderError::ReservedVersion { .. }) if rest.len() >= header::SIZE => {
            let mut patched = [0u8; header::SIZE];
            patched.copy_from_slice(&rest[..header::SIZE]);
            patched[0] = (patched[0] & !0x18) | 0x08;
            match Header::decode(&patched) {
                Ok(header) => header,
                Err(e) => return Split::Unusable(e.to_string()),
            }
        }
        Err(e) => return Split::Unusable(e.to_string()),
    };
    let end = header.frame_len();
    match rest.get(header::SIZE..end) {
        Some(payload) => Split::Frame(header, payload, &rest[end..]),
        None => Split::Corrupt(header),
    }
}

/// Whether `payload` starts with a CBOR map (SMP payloads are maps).
fn is_map(payload: &[u8]) -> bool {
    payload.first().is_some_and(|b| b >> 5 == 5)
}

/// The MGMT code a version 1 client gets for a group error, as Zephyr's per-group
/// translation functions map them.
pub(crate) fn translate(group: u16, rc: u16) -> u16 {
    match group {
        group::OS => match rc {
            2 => mgmt::EINVAL,
            3 => mgmt::ENOENT,
            4 | 5 => mgmt::EBADSTATE,
            _ => mgmt::EUNKNOWN,
        },
        group::IMAGE => match rc {
            3 | 8 => mgmt::ENOENT,
            9 | 15 => mgmt::ENOMEM,
            10..=13 | 16..=18 => mgmt::EUNKNOWN,
            14 | 19..=25 | 29..=31 => mgmt::EINVAL,
            27 | 28 | 32 | 33 => mgmt::EBADSTATE,
            _ => mgmt::EUNKNOWN,
        },
        group::STAT => match rc {
            2 | 3 => mgmt::ENOENT,
            4 => mgmt::EINVAL,
            _ => mgmt::EUNKNOWN,
        },
        group::SETTINGS => match rc {
            2 => mgmt::EINVAL,
            3 | 5 => mgmt::ENOENT,
            4 | 6 | 7 => mgmt::ENOTSUP,
            _ => mgmt::EUNKNOWN,
        },
        group::FS => match rc {
            2 | 11 | 12 => mgmt::EINVAL,
            3 | 14 => mgmt::ENOENT,
            4 => mgmt::EINVAL,
            15 => mgmt::ENOTSUP,
            16 => mgmt::EMSGSIZE,
            _ => mgmt::EUNKNOWN,
        },
        group::SHELL => mgmt::EINVAL,
        group::ENUM => match rc {
            2 | 3 => mgmt::ENOMEM,
            4 => mgmt::EINVAL,
            _ => mgmt::EUNKNOWN,
        },
        _ => mgmt::EUNKNOWN,
    }
}

fn log_request(header: &Header, payload: &[u8], outcome: &Outcome) {
    let group = header::group::name(header.group).unwrap_or("user");
    let result = match outcome {
        Outcome::Ok(_) => "ok".to_owned(),
        Outcome::Mgmt(rc) => format!("rc {rc}"),
        Outcome::Group(rc) => format!("{group} error {rc}"),
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
