//! Settings group (3): read, write and delete in the device's in-memory settings tree
//! (`device::settings`), with one root handler.

use smp_proto::header::command::settings as cmd;
use smp_proto::messages::Empty;
use smp_proto::messages::build;
use smp_proto::messages::settings::{DeleteRequest, ReadRequest, ReadResponse, WriteRequest};

use crate::device::Device;
use crate::reply::{Outcome, mgmt, ok};
use crate::request::Incoming;

/// `SETTINGS_MGMT_ERR_*` codes.
mod err {
    pub(crate) const KEY_TOO_LONG: u16 = 2;
    pub(crate) const KEY_NOT_FOUND: u16 = 3;
    pub(crate) const ROOT_KEY_NOT_FOUND: u16 = 5;
    /// Saving needs a storage backend, which the simulated device (like Zephyr's
    /// `native_sim` sample) does not have.
    pub(crate) const SAVE_FAILED: u16 = 8;
}

/// The settings subtree the simulated device has a handler for: keys `sim/...`.
/// Keys under any other root get `ROOT_KEY_NOT_FOUND`, as on a Zephyr device without
/// a handler for them.
pub const ROOT: &str = "sim";
/// Names of this many characters or more are refused
/// (`CONFIG_MCUMGR_GRP_SETTINGS_NAME_LEN` of the real server).
const NAME_LEN: usize = 32;

/// Checks a key: `Err` is the reply when the device has no handler for it.
fn check(name: &str) -> Result<(), Outcome> {
    if name.is_empty() {
        return Err(Outcome::Mgmt(mgmt::EINVAL));
    }
    if name.len() >= NAME_LEN {
        return Err(Outcome::Group(err::KEY_TOO_LONG));
    }
    match name.split_once('/') {
        Some((ROOT, rest)) if !rest.is_empty() => Ok(()),
        _ => Err(Outcome::Group(err::ROOT_KEY_NOT_FOUND)),
    }
}

pub(crate) fn handle(dev: &mut Device, req: &Incoming<'_>) -> Outcome {
    let settings = &mut dev.settings;
    match (req.command, req.is_read()) {
        (cmd::READ_WRITE, true) => match req.decode::<ReadRequest>() {
            Ok(read) => {
                if let Err(e) = check(&read.name) {
                    return e;
                }
                match settings.values.get(&read.name) {
                    Some(value) => {
                        let keep = read
                            .max_size
                            .map_or(value.len(), |max| value.len().min(max as usize));
                        ok(&build(|v: &mut ReadResponse| {
                            v.val = value[..keep].to_vec();
                        }))
                    }
                    None => Outcome::Group(err::KEY_NOT_FOUND),
                }
            }
            Err(e) => e,
        },
        (cmd::READ_WRITE, false) => match req.decode::<WriteRequest>() {
            Ok(write) => {
                if let Err(e) = check(&write.name) {
                    return e;
                }
                settings.values.insert(write.name, write.val);
                ok(&Empty)
            }
            Err(e) => e,
        },
        (cmd::DELETE, false) => match req.decode::<DeleteRequest>() {
            Ok(delete) if delete.name.is_empty() => Outcome::Mgmt(mgmt::EINVAL),
            Ok(delete) if delete.name.len() >= NAME_LEN => Outcome::Group(err::KEY_TOO_LONG),
            Ok(delete) => match settings.values.remove(&delete.name) {
                Some(_) => ok(&Empty),
                None => Outcome::Group(err::KEY_NOT_FOUND),
            },
            Err(e) => e,
        },
        (cmd::COMMIT, false) | (cmd::LOAD_SAVE, true) => ok(&Empty),
        (cmd::LOAD_SAVE, false) => Outcome::Group(err::SAVE_FAILED),
        _ => Outcome::Mgmt(mgmt::ENOTSUP),
    }
}
