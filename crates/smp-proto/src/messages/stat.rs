//! Statistics management (group 2): read a statistics group, list the groups.

use alloc::string::String;
use alloc::vec::Vec;

use alloc::collections::BTreeMap;

use smp_header::{command::stat as cmd, group};

use super::request;
use crate::smp_map;

smp_map! {
    /// Read one statistics group (command 0, read).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    pub struct GroupDataRequest {
        /// Name of the group.
        "name" => pub name: String,
    }
}

smp_map! {
    /// Answer to [`GroupDataRequest`].
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct GroupDataResponse {
        /// Name of the group.
        "name" => pub name: String,
        /// Counter values by name.
        "fields" => pub fields: BTreeMap<String, u64>,
    }
}

smp_map! {
    /// List the statistics groups (command 1, read).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct ListRequest;
}

smp_map! {
    /// Answer to [`ListRequest`].
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct ListResponse {
        /// Names of the groups.
        "stat_list" => pub stat_list: Vec<String>,
    }
}

request!(GroupDataRequest => GroupDataResponse, group::STAT, cmd::GROUP_DATA, Read);
request!(ListRequest => ListResponse, group::STAT, cmd::LIST, Read);

#[cfg(test)]
mod tests {
    use std::borrow::ToOwned;

    use super::*;
    use crate::messages::test_util::{check, check_rejects};
    use std::vec;

    #[test]
    fn round_trips() {
        check(&GroupDataRequest {
            name: "smp_svr_stats".into(),
        });
        check(&ListRequest);
        let fields = [
            ("stat0", 0),
            ("stat1", 3),
            ("s0", 70_000),
            ("big", u64::MAX),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        check(&GroupDataResponse {
            name: "smp_svr_stats".into(),
            fields,
        });
        check(&GroupDataResponse::default());
        check(&ListResponse {
            stat_list: vec!["smp_svr_stats".into(), "net".into()],
        });
        check(&ListResponse::default());
    }

    #[test]
    fn missing_or_wrong_fields_are_errors() {
        check_rejects::<GroupDataResponse>("a1 646e616d65 6161");
        check_rejects::<ListResponse>("a0");
        // A negative counter.
        check_rejects::<GroupDataResponse>("a2 646e616d65 6161 666669656c6473 a1 6161 20");
    }
}
