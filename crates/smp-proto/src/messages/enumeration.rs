//! Enumeration management (group 10): which groups the device supports.

use alloc::string::String;
use alloc::vec::Vec;

use smp_header::{command::enumeration as cmd, group};

use super::request;
use crate::smp_map;

smp_map! {
    /// Number of supported groups (command 0, read).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct CountRequest;
}

smp_map! {
    /// Answer to [`CountRequest`].
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct CountResponse {
        /// Number of supported groups.
        "count" => pub count: u32,
    }
}

smp_map! {
    /// The ids of the supported groups (command 1, read).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct ListRequest;
}

smp_map! {
    /// Answer to [`ListRequest`].
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct ListResponse {
        /// Group ids.
        "groups" => pub groups: Vec<u16>,
    }
}

smp_map! {
    /// The id of one supported group, by index (command 2, read).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct SingleRequest {
        /// 0-based index; 0 when absent.
        "index" => pub index: Option<u32>,
    }
}

smp_map! {
    /// Answer to [`SingleRequest`].
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct SingleResponse {
        /// True for the last group.
        "end" => pub end: Option<bool>,
        /// The group id at the index.
        "group" => pub group: u16,
    }
}

smp_map! {
    /// Details of the supported groups (command 3, read).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    pub struct DetailsRequest {
        /// The groups to describe; all when absent.
        "groups" => pub groups: Option<Vec<u16>>,
    }
}

smp_map! {
    /// One entry of [`DetailsResponse`].
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct GroupDetails {
        /// Name of the group (with `CONFIG_MCUMGR_GRP_ENUM_DETAILS_NAME`).
        "name" => pub name: Option<String>,
        /// Group id.
        "group" => pub group: u16,
        /// Number of command handlers (with `CONFIG_MCUMGR_GRP_ENUM_DETAILS_HANDLERS`).
        "handlers" => pub handlers: Option<u32>,
    }
}

smp_map! {
    /// Answer to [`DetailsRequest`].
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct DetailsResponse {
        /// One entry per group.
        "groups" => pub groups: Vec<GroupDetails>,
    }
}

request!(CountRequest => CountResponse, group::ENUM, cmd::COUNT, Read);
request!(ListRequest => ListResponse, group::ENUM, cmd::LIST, Read);
request!(SingleRequest => SingleResponse, group::ENUM, cmd::SINGLE, Read);
request!(DetailsRequest => DetailsResponse, group::ENUM, cmd::DETAILS, Read);

#[cfg(test)]
mod tests {

    use super::*;
    use crate::messages::test_util::{check, check_rejects};
    use std::vec;

    #[test]
    fn round_trips() {
        check(&CountRequest);
        check(&CountResponse { count: 4 });
        check(&ListRequest);
        check(&ListResponse {
            groups: vec![0, 2, 9, 63, 64, 0xffff],
        });
        check(&SingleRequest::default());
        check(&SingleRequest { index: Some(3) });
        check(&SingleResponse {
            end: Some(true),
            group: 63,
        });
        check(&SingleResponse {
            end: None,
            group: 0,
        });
        check(&DetailsRequest::default());
        check(&DetailsRequest {
            groups: Some(vec![0, 1, 63, 64]),
        });
        check(&DetailsResponse {
            groups: vec![
                GroupDetails {
                    name: Some("os mgmt".into()),
                    group: 0,
                    handlers: Some(9),
                },
                GroupDetails {
                    group: 64,
                    ..GroupDetails::default()
                },
            ],
        });
    }

    #[test]
    fn out_of_range_group_ids_are_errors() {
        // {"groups": [65536]}
        check_rejects::<ListResponse>("a1 6667726f757073 81 1a00010000");
        check_rejects::<SingleResponse>("a1 63656e64 f5");
    }
}
