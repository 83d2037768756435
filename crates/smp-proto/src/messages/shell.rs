//! Shell management (group 9): run a shell command.

use alloc::string::String;
use alloc::vec::Vec;

use minicbor::decode::{self, Decoder};
use minicbor::encode::{self, Encoder, Write};
use smp_header::{command::shell as cmd, group};

use crate::map::{self, FieldEncode};
use crate::smp_map;

smp_map! {
    /// Run a shell command (command 0, write).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
    pub struct ExecRequest {
        /// The command and its arguments (`["kernel", "uptime"]`).
        "argv" => pub argv: Vec<String>,
    }
}

/// Answer to [`ExecRequest`]: `{"o": output, "ret": exit code}`.
///
/// Older Zephyr versions send the exit code as `rc` instead of `ret`; it is accepted
/// when `ret` is absent. (Such a non-zero `rc` also looks like a management error to a
/// generic error check.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ExecResponse {
    /// The command's output.
    pub o: String,
    /// The command's exit code (0 for success).
    pub ret: i64,
}

impl<C> minicbor::Encode<C> for ExecResponse {
    fn encode<W: Write>(
        &self,
        e: &mut Encoder<W>,
        _: &mut C,
    ) -> Result<(), encode::Error<W::Error>> {
        e.map(2)?.str("o")?;
        self.o.encode_field(e)?;
        e.str("ret")?;
        self.ret.encode_field(e)
    }
}

impl<C> minicbor::CborLen<C> for ExecResponse {
    fn cbor_len(&self, _: &mut C) -> usize {
        1 + map::str_len("o") + self.o.field_len() + map::str_len("ret") + self.ret.field_len()
    }
}

impl<'b, C> minicbor::Decode<'b, C> for ExecResponse {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, decode::Error> {
        let (mut o, mut ret, mut rc) = (None, None, None);
        map::decode_map(d, |key, d| {
            match key {
                "o" => o = Some(map::text(d)?.into_owned()),
                "ret" => ret = Some(map::int(d)?),
                "rc" => rc = Some(map::int(d)?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(Self {
            o: o.ok_or_else(|| map::missing("ExecResponse: missing required field `o`"))?,
            ret: ret
                .or(rc)
                .ok_or_else(|| map::missing("ExecResponse: missing field `ret` (or `rc`)"))?,
        })
    }
}

impl crate::Request for ExecRequest {
    const GROUP: u16 = group::SHELL;
    const COMMAND: u8 = cmd::EXEC;
    const OP: smp_header::Op = smp_header::Op::Write;
    type Response = ExecResponse;
    /// Zephyr before 3.5 answered `{o, rc}` with the command's exit code in `rc`.
    const RC_MAY_BE_RESULT: bool = true;
}

#[cfg(test)]
mod tests {

    use std::string::String;

    use super::*;
    use crate::messages::test_util::{check, check_rejects, hex};
    use std::vec;

    #[test]
    fn round_trips() {
        check(&ExecRequest {
            argv: vec!["kernel".into(), "uptime".into()],
        });
        check(&ExecRequest::default());
        check(&ExecResponse {
            o: "uptime: 42".into(),
            ret: 0,
        });
        check(&ExecResponse {
            o: String::new(),
            ret: -8,
        });
    }

    #[test]
    fn older_zephyr_sends_rc() {
        // {"o": "x", "rc": 3}
        let r: ExecResponse = minicbor::decode(&hex("a2 616f 6178 627263 03")).expect("decodes");
        assert_eq!(r.ret, 3);
        // Legacy-rc servers add "rc": 0 next to "ret": ret wins.
        let r: ExecResponse =
            minicbor::decode(&hex("bf 627263 00 616f 6178 63726574 05 ff")).expect("decodes");
        assert_eq!(r.ret, 5);
        check_rejects::<ExecResponse>("a1 616f 6178");
        check_rejects::<ExecResponse>("a1 63726574 00");
    }
}
