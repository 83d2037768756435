//! Enumeration group (10): which groups the device serves.

use smp_proto::header::command::enumeration as cmd;
use smp_proto::messages::build;
use smp_proto::messages::enumeration::{
    CountResponse, DetailsRequest, DetailsResponse, GroupDetails, ListResponse, SingleRequest,
    SingleResponse,
};

use super::GROUPS;
use crate::reply::{Outcome, mgmt, ok};
use crate::request::Incoming;

/// `ENUM_MGMT_ERR_TOO_MANY_GROUP_ENTRIES` and `ENUM_MGMT_ERR_INDEX_TOO_LARGE`.
const TOO_MANY_GROUP_ENTRIES: u16 = 2;
const INDEX_TOO_LARGE: u16 = 4;
/// Group ids a details request may name (`CONFIG_MCUMGR_GRP_ENUM_DETAILS_STACK_ENTRIES`).
const DETAILS_MAX: usize = 16;

pub(crate) fn handle(req: &Incoming<'_>) -> Outcome {
    match (req.command, req.is_read()) {
        (cmd::COUNT, true) => ok(&build(|v: &mut CountResponse| {
            v.count = GROUPS.len() as u32;
        })),
        (cmd::LIST, true) => ok(&build(|v: &mut ListResponse| {
            v.groups = GROUPS.iter().map(|(id, ..)| *id).collect();
        })),
        (cmd::SINGLE, true) => match req.decode::<SingleRequest>() {
            Ok(single) => {
                let index = single.index.unwrap_or(0) as usize;
                match GROUPS.get(index) {
                    Some((group, ..)) => ok(&build(|v: &mut SingleResponse| {
                        v.group = *group;
                        v.end = (index + 1 == GROUPS.len()).then_some(true);
                    })),
                    None => Outcome::Group(INDEX_TOO_LARGE),
                }
            }
            Err(e) => e,
        },
        (cmd::DETAILS, true) => match req.decode::<DetailsRequest>() {
            Ok(details)
                if details
                    .groups
                    .as_ref()
                    .is_some_and(|g| g.len() > DETAILS_MAX) =>
            {
                Outcome::Group(TOO_MANY_GROUP_ENTRIES)
            }
            Ok(details) => ok(&build(|v: &mut DetailsResponse| {
                v.groups = GROUPS
                    .iter()
                    .filter(|(id, ..)| {
                        details
                            .groups
                            .as_ref()
                            .is_none_or(|wanted| wanted.contains(id))
                    })
                    .map(|(group, name, handlers)| {
                        build(|v: &mut GroupDetails| {
                            v.group = *group;
                            v.name = Some((*name).to_owned());
                            v.handlers = Some(*handlers);
                        })
                    })
                    .collect();
            })),
            Err(e) => e,
        },
        _ => Outcome::Mgmt(mgmt::ENOTSUP),
    }
}
