//! Settings management (group 3): read, write and delete settings; commit, load, save.

use alloc::string::String;
use alloc::vec::Vec;

use smp_header::{command::settings as cmd, group};

use super::{Empty, request};
use crate::smp_map;

smp_map! {
    /// Read a setting (command 0, read).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    pub struct ReadRequest {
        /// The setting's name (`"app/name"`).
        "name" => pub name: String,
        /// Largest value to return.
        "max_size" => pub max_size: Option<u32>,
    }
}

smp_map! {
    /// Answer to [`ReadRequest`].
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub struct ReadResponse {
        /// The value; its format is up to the application.
        "val" => pub val: Vec<u8>,
        /// Set when the device supports less than the requested `max_size`: its limit.
        "max_size" => pub max_size: Option<u32>,
    }
}

smp_map! {
    /// Write a setting (command 0, write); answered by [`Empty`].
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    pub struct WriteRequest {
        /// The value.
        "val" => pub val: Vec<u8>,
        /// The setting's name.
        "name" => pub name: String,
    }
}

smp_map! {
    /// Delete a setting (command 1, write); answered by [`Empty`].
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    pub struct DeleteRequest {
        /// The setting's name.
        "name" => pub name: String,
    }
}

smp_map! {
    /// Apply the settings written but not yet applied (command 2, write); answered by
    /// [`Empty`].
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct CommitRequest;
}

smp_map! {
    /// Load the settings from persistent storage (command 3, read); answered by [`Empty`].
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct LoadRequest;
}

smp_map! {
    /// Save the settings to persistent storage (command 3, write); answered by [`Empty`].
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct SaveRequest;
}

request!(ReadRequest => ReadResponse, group::SETTINGS, cmd::READ_WRITE, Read);
request!(WriteRequest => Empty, group::SETTINGS, cmd::READ_WRITE, Write);
request!(DeleteRequest => Empty, group::SETTINGS, cmd::DELETE, Write);
request!(CommitRequest => Empty, group::SETTINGS, cmd::COMMIT, Write);
request!(LoadRequest => Empty, group::SETTINGS, cmd::LOAD_SAVE, Read);
request!(SaveRequest => Empty, group::SETTINGS, cmd::LOAD_SAVE, Write);

#[cfg(test)]
mod tests {

    use super::*;
    use crate::messages::test_util::{check, check_rejects};
    use std::vec;

    #[test]
    fn round_trips() {
        check(&ReadRequest {
            name: "app/name".into(),
            max_size: None,
        });
        check(&ReadRequest {
            name: "app/name".into(),
            max_size: Some(64),
        });
        check(&ReadResponse {
            val: b"abc".to_vec(),
            max_size: None,
        });
        check(&ReadResponse {
            val: vec![],
            max_size: Some(32),
        });
        check(&WriteRequest {
            val: vec![1, 2, 0xff],
            name: "app/name".into(),
        });
        check(&DeleteRequest {
            name: "app/name".into(),
        });
        check(&CommitRequest);
        check(&LoadRequest);
        check(&SaveRequest);
        check(&Empty);
    }

    #[test]
    fn val_must_be_bytes() {
        check_rejects::<ReadResponse>("a1 6376616c 63616263");
        check_rejects::<ReadResponse>("a0");
    }
}
