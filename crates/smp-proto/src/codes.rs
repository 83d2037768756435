//! Names of the error codes devices report, per docs/protocol.md section 3 (Zephyr's
//! `mgmt_err` and each group's `*_mgmt_err_code_t`).
//!
//! Codes 0 (OK) and 1 (UNKNOWN) are the same in every group table; a code missing from a
//! table still reaches the user as its number.

use smp_header::group;

/// `MGMT_ERR_ENOMEM`: the device had no buffer for the reply; try again later.
pub const MGMT_ENOMEM: i64 = 2;
/// `MGMT_ERR_ENOTSUP`: the device does not support the command.
pub const MGMT_ENOTSUP: i64 = 8;
/// `MGMT_ERR_EBUSY`: the device is busy; try again later.
pub const MGMT_EBUSY: i64 = 10;

/// `FS_MGMT_ERR_CHECKSUM_HASH_NOT_FOUND`: the device does not compute that hash type.
pub const FS_CHECKSUM_HASH_NOT_FOUND: i64 = 13;

/// The name of a management (v1 `rc`) error code, as `MGMT_ERR_*` without the prefix.
pub fn mgmt_name(rc: i64) -> Option<&'static str> {
    Some(match rc {
        0 => "EOK",
        1 => "EUNKNOWN",
        2 => "ENOMEM",
        3 => "EINVAL",
        4 => "ETIMEOUT",
        5 => "ENOENT",
        6 => "EBADSTATE",
        7 => "EMSGSIZE",
        8 => "ENOTSUP",
        9 => "ECORRUPT",
        10 => "EBUSY",
        11 => "EACCESSDENIED",
        12 => "UNSUPPORTED_TOO_OLD",
        13 => "UNSUPPORTED_TOO_NEW",
        256 => "EPERUSER",
        _ => return None,
    })
}

/// The name of a group (v2 `err: {group, rc}`) error code.
pub fn group_name(group: u16, rc: i64) -> Option<&'static str> {
    match rc {
        0 => return Some("OK"),
        1 => return Some("UNKNOWN"),
        _ => {}
    }
    let table: &[(i64, &str)] = match group {
        group::OS => &[
            (2, "INVALID_FORMAT"),
            (3, "QUERY_YIELDS_NO_ANSWER"),
            (4, "RTC_NOT_SET"),
            (5, "RTC_COMMAND_FAILED"),
        ],
        group::IMAGE => &[
            (2, "FLASH_CONFIG_QUERY_FAIL"),
            (3, "NO_IMAGE"),
            (4, "NO_TLVS"),
            (5, "INVALID_TLV"),
            (6, "TLV_MULTIPLE_HASHES_FOUND"),
            (7, "TLV_INVALID_SIZE"),
            (8, "HASH_NOT_FOUND"),
            (9, "NO_FREE_SLOT"),
            (10, "FLASH_OPEN_FAILED"),
            (11, "FLASH_READ_FAILED"),
            (12, "FLASH_WRITE_FAILED"),
            (13, "FLASH_ERASE_FAILED"),
            (14, "INVALID_SLOT"),
            (15, "NO_FREE_MEMORY"),
            (16, "FLASH_CONTEXT_ALREADY_SET"),
            (17, "FLASH_CONTEXT_NOT_SET"),
            (18, "FLASH_AREA_DEVICE_NULL"),
            (19, "INVALID_PAGE_OFFSET"),
            (20, "INVALID_OFFSET"),
            (21, "INVALID_LENGTH"),
            (22, "INVALID_IMAGE_HEADER"),
            (23, "INVALID_IMAGE_HEADER_MAGIC"),
            (24, "INVALID_HASH"),
            (25, "INVALID_FLASH_ADDRESS"),
            (26, "VERSION_GET_FAILED"),
            (27, "CURRENT_VERSION_IS_NEWER"),
            (28, "IMAGE_ALREADY_PENDING"),
            (29, "INVALID_IMAGE_VECTOR_TABLE"),
            (30, "INVALID_IMAGE_TOO_LARGE"),
            (31, "INVALID_IMAGE_DATA_OVERRUN"),
            (32, "IMAGE_CONFIRMATION_DENIED"),
            (33, "IMAGE_SETTING_TEST_TO_ACTIVE_DENIED"),
        ],
        group::STAT => &[
            (2, "INVALID_GROUP"),
            (3, "INVALID_STAT_NAME"),
            (4, "INVALID_STAT_SIZE"),
            (5, "WALK_ABORTED"),
        ],
        group::SETTINGS => &[
            (2, "KEY_TOO_LONG"),
            (3, "KEY_NOT_FOUND"),
            (4, "READ_NOT_SUPPORTED"),
            (5, "ROOT_KEY_NOT_FOUND"),
            (6, "WRITE_NOT_SUPPORTED"),
            (7, "DELETE_NOT_SUPPORTED"),
        ],
        group::FS => &[
            (2, "FILE_INVALID_NAME"),
            (3, "FILE_NOT_FOUND"),
            (4, "FILE_IS_DIRECTORY"),
            (5, "FILE_OPEN_FAILED"),
            (6, "FILE_SEEK_FAILED"),
            (7, "FILE_READ_FAILED"),
            (8, "FILE_TRUNCATE_FAILED"),
            (9, "FILE_DELETE_FAILED"),
            (10, "FILE_WRITE_FAILED"),
            (11, "FILE_OFFSET_NOT_VALID"),
            (12, "FILE_OFFSET_LARGER_THAN_FILE"),
            (13, "CHECKSUM_HASH_NOT_FOUND"),
            (14, "MOUNT_POINT_NOT_FOUND"),
            (15, "READ_ONLY_FILESYSTEM"),
            (16, "FILE_EMPTY"),
        ],
        group::SHELL => &[(2, "INVALID_FORMAT")],
        group::ENUM => &[
            (2, "TOO_MANY_GROUP_ENTRIES"),
            (3, "INSUFFICIENT_HEAP_FOR_ENTRIES"),
            (4, "INDEX_TOO_LARGE"),
        ],
        group::ZEPHYR => &[
            (2, "FLASH_OPEN_FAILED"),
            (3, "FLASH_CONFIG_QUERY_FAIL"),
            (4, "FLASH_ERASE_FAILED"),
        ],
        _ => &[],
    };
    table
        .iter()
        .find(|(code, _)| *code == rc)
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn names_from_every_table() {
        assert_eq!(mgmt_name(8), Some("ENOTSUP"));
        assert_eq!(mgmt_name(256), Some("EPERUSER"));
        assert_eq!(mgmt_name(99), None);
        assert_eq!(
            group_name(group::IMAGE, 30),
            Some("INVALID_IMAGE_TOO_LARGE")
        );
        assert_eq!(
            group_name(group::IMAGE, 33),
            Some("IMAGE_SETTING_TEST_TO_ACTIVE_DENIED")
        );
        assert_eq!(group_name(group::OS, 4), Some("RTC_NOT_SET"));
        assert_eq!(group_name(group::FS, 16), Some("FILE_EMPTY"));
        assert_eq!(group_name(group::SETTINGS, 3), Some("KEY_NOT_FOUND"));
        assert_eq!(group_name(group::ENUM, 4), Some("INDEX_TOO_LARGE"));
        assert_eq!(group_name(group::ZEPHYR, 4), Some("FLASH_ERASE_FAILED"));
        assert_eq!(group_name(group::STAT, 5), Some("WALK_ABORTED"));
        assert_eq!(group_name(group::SHELL, 2), Some("INVALID_FORMAT"));
        assert_eq!(group_name(64, 1), Some("UNKNOWN"));
        assert_eq!(group_name(64, 2), None);
        assert_eq!(group_name(group::IMAGE, 34), None);
    }
}
