//! Zephyr basic group (63): erase the storage partition (where settings and the file
//! system live).

use smp_proto::header::command::zephyr as cmd;
use smp_proto::messages::Empty;

use crate::device::Device;
use crate::reply::{Outcome, mgmt, ok};
use crate::request::{Ctx, Incoming};

pub(crate) fn handle(dev: &mut Device, req: &Incoming<'_>, ctx: &mut Ctx) -> Outcome {
    match (req.command, req.is_read()) {
        (cmd::ERASE_STORAGE, false) => {
            dev.settings.erase();
            dev.fs.erase();
            ctx.busy += dev.config.delays.erase;
            ok(&Empty)
        }
        _ => Outcome::Mgmt(mgmt::ENOTSUP),
    }
}
