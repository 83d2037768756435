//! Statistics group (2): the statistics groups of Zephyr's `smp_svr` sample on a
//! simulated flash.

use std::collections::BTreeMap;

use smp_client::header::command::stat as cmd;
use smp_client::messages::stat::{GroupDataRequest, GroupDataResponse, ListResponse};

use crate::device::{Device, Incoming};
use crate::reply::{Outcome, mgmt, ok};

/// `STAT_MGMT_ERR_INVALID_GROUP`.
const INVALID_GROUP: u16 = 2;

pub(crate) fn handle(dev: &mut Device, req: &Incoming<'_>) -> Outcome {
    match (req.command, req.is_read()) {
        (cmd::LIST, true) => ok(&ListResponse {
            stat_list: GROUP_NAMES.iter().map(|s| (*s).to_owned()).collect(),
        }),
        (cmd::GROUP_DATA, true) => match req.decode::<GroupDataRequest>() {
            Ok(request) => match fields(dev, &request.name) {
                Some(fields) => ok(&GroupDataResponse {
                    name: request.name,
                    fields,
                }),
                None => Outcome::Group(INVALID_GROUP),
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
        "flash_sim_stats" => vec![
            ("bytes_read", 0),
            ("bytes_written", 0),
            ("double_writes", 0),
            ("flash_read_calls", 0),
            ("flash_read_time_us", 0),
            ("flash_write_calls", 0),
            ("flash_write_time_us", 0),
            ("flash_erase_calls", 0),
            ("flash_erase_time_us", 0),
        ],
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
