//! Statistics group (2): the statistics groups of Zephyr's `smp_svr` sample on a
//! simulated flash.

use std::collections::BTreeMap;

use smp_proto::header::command::stat as cmd;
use smp_proto::messages::build;
use smp_proto::messages::stat::{GroupDataRequest, GroupDataResponse, ListResponse};

use crate::device::Device;
use crate::reply::{Outcome, mgmt, ok};
use crate::request::Incoming;

/// `STAT_MGMT_ERR_INVALID_STAT_NAME`: Zephyr answers it for an unknown group name.
const INVALID_STAT_NAME: u16 = 3;

pub(crate) fn handle(dev: &mut Device, req: &Incoming<'_>) -> Outcome {
    match (req.command, req.is_read()) {
        (cmd::LIST, true) => ok(&build(|v: &mut ListResponse| {
            v.stat_list = GROUP_NAMES.iter().map(|s| (*s).to_owned()).collect();
        })),
        (cmd::GROUP_DATA, true) => match req.decode::<GroupDataRequest>() {
            Ok(request) if request.name.is_empty() => Outcome::Mgmt(mgmt::EINVAL),
            // The real server's flash simulator has more counters than its reply
            // buffer holds: it answers EMSGSIZE, and so does this device.
            Ok(request) if request.name == "flash_sim_stats" => Outcome::Mgmt(mgmt::EMSGSIZE),
            Ok(request) => match fields(dev, &request.name) {
                Some(fields) => ok(&build(|v: &mut GroupDataResponse| {
                    v.name = request.name;
                    v.fields = fields;
                })),
                None => Outcome::Group(INVALID_STAT_NAME),
            },
            Err(e) => e,
        },
        _ => Outcome::Mgmt(mgmt::ENOTSUP),
    }
}

const GROUP_NAMES: [&str; 3] = ["flash_sim_stats", "flash_sim_thresholds", "smp_svr_stats"];

fn fields(dev: &Device, name: &str) -> Option<BTreeMap<String, u64>> {
    let entries: Vec<(&str, u64)> = match name {
        "smp_svr_stats" => vec![("ticks", dev.booted.elapsed().as_secs())],
        "flash_sim_thresholds" => vec![
            ("max_write_calls", 0),
            ("max_erase_calls", 0),
            ("max_len", 0),
        ],
        _ => return None,
    };
    Some(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}
