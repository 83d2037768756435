//! One module per management group, each with a `handle` for its commands.

pub(crate) mod enumeration;
pub(crate) mod fs;
pub(crate) mod image;
pub(crate) mod os;
pub(crate) mod settings;
pub(crate) mod shell;
pub(crate) mod stat;
pub(crate) mod zephyr;

use smp_proto::header::group;

/// The groups this device serves, in the order Zephyr registers them for the
/// `smp_svr` sample (enumeration first), with their names and number of commands as
/// the enumeration group's details report them.
pub(crate) const GROUPS: [(u16, &str, u32); 8] = [
    (group::ENUM, "enum mgmt", 4),
    (group::FS, "fs mgmt", 5),
    (group::OS, "os mgmt", 8),
    (group::SETTINGS, "settings mgmt", 4),
    (group::SHELL, "shell mgmt", 1),
    (group::STAT, "stat mgmt", 2),
    (group::ZEPHYR, "zephyr basic mgmt", 1),
    (group::IMAGE, "img mgmt", 4),
];
