//! A device's own error codes: [`DeviceError`], and [`reply_error`], which finds one in a
//! reply's payload.

use alloc::string::String;
use core::fmt;

use minicbor::data::Type;
use minicbor::decode::{self, Decoder};
use smp_header::group;

use crate::codes;
use crate::map::{decode_map, is_int_type, text};

/// An error code a device reported instead of a successful reply.
///
/// SMP version 1 replies carry a management code (`{"rc": 8}`, optionally with a reason
/// string `rsn`); version 2 replies carry a group code (`{"err": {"group": 1, "rc": 30}}`).
/// Unknown codes are kept as numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceError {
    /// Group of the request (for a management code) or the group named by `err`.
    pub group: u16,
    /// The code.
    pub rc: i64,
    /// Which table `rc` belongs to.
    pub scope: ErrorScope,
    /// Optional human-readable reason (`rsn`) some devices add.
    pub reason: Option<String>,
}

/// Which table a [`DeviceError`] code comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorScope {
    /// `MGMT_ERR_*`: a v1 `rc`, or a protocol-level error on v2.
    Management,
    /// The group's own table: a v2 `err: {group, rc}`.
    Group,
}

impl DeviceError {
    /// The code's name (`ENOTSUP`, `INVALID_IMAGE_TOO_LARGE`), if the table knows it.
    pub fn name(&self) -> Option<&'static str> {
        match self.scope {
            ErrorScope::Management => codes::mgmt_name(self.rc),
            ErrorScope::Group => codes::group_name(self.group, self.rc),
        }
    }

    /// True for codes that mean "slow down and retry": management ENOMEM and EBUSY.
    pub fn is_back_pressure(&self) -> bool {
        self.scope == ErrorScope::Management
            && matches!(self.rc, codes::MGMT_ENOMEM | codes::MGMT_EBUSY)
    }

    /// True when the device cannot compute a file hash of the type asked for: the file
    /// system group says so, or the command is not supported at all.
    pub fn is_unsupported_hash(&self) -> bool {
        self.is_not_supported()
            || (self.scope == ErrorScope::Group
                && self.group == group::FS
                && self.rc == codes::FS_CHECKSUM_HASH_NOT_FOUND)
    }

    /// True when the device does not support the command (management ENOTSUP).
    pub fn is_not_supported(&self) -> bool {
        self.scope == ErrorScope::Management && self.rc == codes::MGMT_ENOTSUP
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = match self.scope {
            ErrorScope::Management => "MGMT",
            ErrorScope::Group => group::name(self.group).unwrap_or("GROUP"),
        };
        if self.scope == ErrorScope::Group && group::name(self.group).is_none() {
            write!(f, "group {} error {}", self.group, self.rc)?;
        } else {
            write!(f, "{table} {}", self.rc)?;
        }
        if let Some(name) = self.name() {
            write!(f, " {name}")?;
        }
        if let Some(reason) = &self.reason {
            write!(f, " ({reason})")?;
        }
        Ok(())
    }
}

impl core::error::Error for DeviceError {}

/// Looks for a device error in a reply payload.
///
/// Reads the top-level map (definite or indefinite) for `rc` (a v1 / management code),
/// `rsn` (a reason string) and `err: {group, rc}` (a v2 group code) and ignores every
/// other entry. A code of 0 is success; `Ok(None)` means the reply is not an error.
/// When both are present and non-zero, `err` (the more specific) wins. A management
/// code is attributed to `request_group`. Codes are kept as numbers, known or not.
/// With `rc_may_be_result` (see [`Request::RC_MAY_BE_RESULT`](crate::Request)), an `rc`
/// beside other fields belongs to the response.
pub fn reply_error(
    payload: &[u8],
    request_group: u16,
    rc_may_be_result: bool,
) -> Result<Option<DeviceError>, decode::Error> {
    let mut d = Decoder::new(payload);
    let mut rc: Option<i64> = None;
    let mut rsn: Option<String> = None;
    let mut err: Option<(Option<u16>, Option<i64>)> = None;
    let mut other_fields = false;
    decode_map(&mut d, |key, d| match key {
        "rc" if is_int(d)? => {
            rc = Some(saturating_int(d)?);
            Ok(true)
        }
        "rsn" if is_text(d)? => {
            rsn = Some(text(d)?.into_owned());
            Ok(true)
        }
        "err" if matches!(d.datatype()?, Type::Map | Type::MapIndef) => {
            let mut group = None;
            let mut code = None;
            decode_map(d, |key, d| match key {
                "group" if is_int(d)? => {
                    group = u16::try_from(saturating_int(d)?).ok();
                    Ok(true)
                }
                "rc" if is_int(d)? => {
                    code = Some(saturating_int(d)?);
                    Ok(true)
                }
                _ => Ok(false),
            })?;
            err = Some((group, code));
            Ok(true)
        }
        _ => {
            other_fields = true;
            Ok(false)
        }
    })?;
    if let Some((group, Some(code))) = err {
        if code != 0 {
            return Ok(Some(DeviceError {
                group: group.unwrap_or(request_group),
                rc: code,
                scope: ErrorScope::Group,
                reason: rsn,
            }));
        }
    }
    Ok(match rc {
        Some(code) if code != 0 && !(rc_may_be_result && other_fields) => Some(DeviceError {
            group: request_group,
            rc: code,
            scope: ErrorScope::Management,
            reason: rsn,
        }),
        _ => None,
    })
}

fn is_int(d: &Decoder<'_>) -> Result<bool, decode::Error> {
    Ok(is_int_type(d.datatype()?))
}

fn is_text(d: &Decoder<'_>) -> Result<bool, decode::Error> {
    Ok(matches!(d.datatype()?, Type::String | Type::StringIndef))
}

/// Any CBOR integer, clamped to the `i64` range (an error code is never that large).
fn saturating_int(d: &mut Decoder<'_>) -> Result<i64, decode::Error> {
    let n = i128::from(d.int()?);
    Ok(n.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

#[cfg(test)]
mod tests {
    use crate::messages::test_util::hex;

    use std::string::ToString;

    use super::*;

    #[test]
    fn messages_name_the_code() {
        let e = DeviceError {
            group: group::IMAGE,
            rc: 30,
            scope: ErrorScope::Group,
            reason: None,
        };
        assert_eq!(e.to_string(), "IMG 30 INVALID_IMAGE_TOO_LARGE");
        let e = DeviceError {
            group: group::OS,
            rc: 8,
            scope: ErrorScope::Management,
            reason: Some("nope".into()),
        };
        assert_eq!(e.to_string(), "MGMT 8 ENOTSUP (nope)");
        assert!(e.is_not_supported());
        let e = DeviceError {
            group: 70,
            rc: 5,
            scope: ErrorScope::Group,
            reason: None,
        };
        assert_eq!(e.to_string(), "group 70 error 5");
        let e = DeviceError {
            group: group::FS,
            rc: 99,
            scope: ErrorScope::Group,
            reason: None,
        };
        assert_eq!(e.to_string(), "FS 99");
        let e = DeviceError {
            group: 0,
            rc: 10,
            scope: ErrorScope::Management,
            reason: None,
        };
        assert!(e.is_back_pressure());
    }

    #[test]
    fn reply_error_management_code_from_indefinite_map() {
        let e = reply_error(&hex("bf 627263 08 ff"), 0, false)
            .expect("decodes")
            .expect("is an error");
        assert_eq!(e.scope, ErrorScope::Management);
        assert_eq!((e.group, e.rc, e.reason.as_deref()), (0, 8, None));
        assert!(e.is_not_supported());
    }

    #[test]
    fn reply_error_group_code() {
        // {"err": {"group": 1, "rc": 30}}
        let e = reply_error(&hex("a1 63657272 a2 6567726f7570 01 627263 181e"), 1, false)
            .expect("decodes")
            .expect("is an error");
        assert_eq!(e.scope, ErrorScope::Group);
        assert_eq!((e.group, e.rc), (1, 30));
        assert_eq!(e.name(), Some("INVALID_IMAGE_TOO_LARGE"));
    }

    #[test]
    fn reply_error_success_cases() {
        // {"rc": 0, "r": "hi"}
        assert_eq!(
            reply_error(&hex("a2 627263 00 6172 626869"), 0, false).expect("decodes"),
            None
        );
        // {"r": "hi"} indefinite
        assert_eq!(
            reply_error(&hex("bf6172626869ff"), 0, false).expect("decodes"),
            None
        );
        // {"err": {"group": 8, "rc": 0}}
        assert_eq!(
            reply_error(&hex("a1 63657272 a2 6567726f7570 08 627263 00"), 8, false)
                .expect("decodes"),
            None
        );
        // {} and a non-integer rc (ignored, not a failure)
        assert_eq!(reply_error(&hex("a0"), 0, false).expect("decodes"), None);
        assert_eq!(
            reply_error(&hex("a1 627263 6178"), 0, false).expect("decodes"),
            None
        );
    }

    #[test]
    fn legacy_shell_exit_codes_are_not_device_errors() {
        // {"o": "x", "rc": 1} from an older Zephyr shell: the command's exit code.
        let legacy = hex("a2 616f 6178 627263 01");
        assert_eq!(reply_error(&legacy, 9, true).expect("decodes"), None);
        // For a request without the flag it is an error, and so is an `rc` alone.
        assert!(reply_error(&legacy, 9, false).expect("decodes").is_some());
        assert!(
            reply_error(&hex("a1 627263 08"), 9, true)
                .expect("decodes")
                .is_some()
        );
    }

    #[test]
    fn reply_error_keeps_reason_and_unknown_codes() {
        // {"rsn": "busy", "rc": 300}
        let e = reply_error(&hex("a2 6372736e 6462757379 627263 19012c"), 70, false)
            .expect("decodes")
            .expect("is an error");
        assert_eq!(e.group, 70);
        assert_eq!(e.rc, 300);
        assert_eq!(e.reason.as_deref(), Some("busy"));
        assert_eq!(e.name(), None);
        // {"err": {"rc": -5}} without a group: attributed to the request's group.
        let e = reply_error(&hex("a1 63657272 a1 627263 24"), 9, false)
            .expect("decodes")
            .expect("is an error");
        assert_eq!((e.group, e.rc, e.scope), (9, -5, ErrorScope::Group));
    }

    #[test]
    fn reply_error_rejects_non_maps() {
        assert!(reply_error(&hex("80"), 0, false).is_err());
        assert!(reply_error(&[], 0, false).is_err());
    }
}
