//! OS group (0): echo, task and memory statistics, date and time, reset, MCUmgr
//! parameters, OS/application information, bootloader information.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use smp_proto::header::command::os as cmd;
use smp_proto::messages::build;
use smp_proto::messages::os::{
    BootloaderInfoRequest, BootloaderInfoResponse, DateTimeResponse, EchoResponse, InfoRequest,
    InfoResponse, McumgrParamsResponse, MpStatResponse, PoolInfo, SetDateTimeRequest, TaskInfo,
    TaskStatResponse,
};
use smp_proto::messages::{Empty, Value};

use crate::device::Device;
use crate::reply::{Outcome, mgmt, ok};
use crate::request::{Ctx, Incoming};

/// OS group error codes.
const INVALID_FORMAT: u16 = 2;
const QUERY_YIELDS_NO_ANSWER: u16 = 3;
const RTC_NOT_SET: u16 = 4;

/// What `os info` reports for each format letter, in Zephyr's output order: the values
/// of Zephyr 4.4.0's `native_sim` build, except the build's commit, date and board.
const INFO: [(char, &str); 9] = [
    ('s', "Zephyr"),
    ('n', "unknown"),
    ('r', "smp-sim"),
    ('v', "4.4.0"),
    ('b', "smp-sim build"),
    ('m', "posix"),
    ('p', "x86"),
    ('i', "smp_sim/native"),
    ('o', "Zephyr"),
];

pub(crate) fn handle(dev: &mut Device, req: &Incoming<'_>, ctx: &mut Ctx) -> Outcome {
    match (req.command, req.is_read()) {
        // Zephyr echoes on read too, and takes a missing `d` for an empty one.
        (cmd::ECHO, _) => match req.decode::<Value>() {
            Ok(Value::Map(entries)) => {
                match entries.iter().find(|(k, _)| k.as_str() == Some("d")) {
                    None => ok(&build(|v: &mut EchoResponse| {
                        v.r = String::new();
                    })),
                    Some((_, Value::Text(d))) => ok(&build(|v: &mut EchoResponse| {
                        v.r = d.clone();
                    })),
                    Some(_) => Outcome::Mgmt(mgmt::EINVAL),
                }
            }
            Ok(_) => Outcome::Mgmt(mgmt::EINVAL),
            Err(e) => e,
        },
        (cmd::TASKSTAT, true) => ok(&tasks(dev)),
        (cmd::MPSTAT, true) => ok(&build(|v: &mut MpStatResponse| {
            v.pools = BTreeMap::from([(
                "heap".to_owned(),
                build(|v: &mut PoolInfo| {
                    v.blksize = 16;
                    v.nblks = 512;
                    v.nfree = 448;
                    v.min = 400;
                }),
            )]);
        })),
        (cmd::DATETIME, true) => match dev.clock_offset {
            Some(offset) => ok(&build(|v: &mut DateTimeResponse| {
                v.datetime = format_datetime(now_unix() + offset);
            })),
            None => Outcome::Group(RTC_NOT_SET),
        },
        (cmd::DATETIME, false) => {
            let Ok(write) = req.decode::<SetDateTimeRequest>() else {
                return Outcome::Mgmt(mgmt::EINVAL);
            };
            match parse_datetime(&write.datetime) {
                Some(secs) => {
                    dev.clock_offset = Some(secs - now_unix());
                    ok(&Empty)
                }
                None => Outcome::Mgmt(mgmt::EINVAL),
            }
        }
        // Zephyr resets whatever the payload says.
        (cmd::RESET, false) => {
            ctx.reset_after_reply = true;
            ok(&Empty)
        }
        (cmd::MCUMGR_PARAMS, true) => ok(&build(|v: &mut McumgrParamsResponse| {
            v.buf_size = u32::try_from(dev.config.buf_size).unwrap_or(u32::MAX);
            v.buf_count = u32::try_from(dev.config.buf_count).unwrap_or(u32::MAX);
        })),
        (cmd::INFO, true) => match req.decode::<InfoRequest>() {
            Ok(info) => match os_info(info.format.as_deref().unwrap_or("s")) {
                Some(output) => ok(&build(|v: &mut InfoResponse| {
                    v.output = output;
                })),
                None => Outcome::Group(INVALID_FORMAT),
            },
            Err(e) => e,
        },
        (cmd::BOOTLOADER_INFO, true) => match req.decode::<BootloaderInfoRequest>() {
            Ok(query) => bootloader_info(query.query.as_deref()),
            Err(e) => e,
        },
        _ => Outcome::Mgmt(mgmt::ENOTSUP),
    }
}

fn tasks(dev: &Device) -> TaskStatResponse {
    let uptime_ms = u64::try_from(dev.booted.elapsed().as_millis()).unwrap_or(u64::MAX);
    let task = |prio: i64, tid: u64, stksiz: u64, stkuse: u64| {
        build(|v: &mut TaskInfo| {
            v.prio = prio;
            v.tid = tid;
            v.state = 0;
            v.stksiz = Some(stksiz);
            v.stkuse = Some(stkuse);
            v.cswcnt = Some(dev.requests);
            v.runtime = Some(uptime_ms);
        })
    };
    build(|v: &mut TaskStatResponse| {
        v.tasks = BTreeMap::from([
            ("idle".to_owned(), task(15, 1, 320, 64)),
            ("main".to_owned(), task(0, 2, 2048, 712)),
            ("smp_work".to_owned(), task(-1, 3, 4096, 1530)),
        ]);
    })
}

/// `uname`-like output for the format letters Zephyr knows (`a` for all), always in
/// Zephyr's order; `None` if any other character is present.
fn os_info(format: &str) -> Option<String> {
    if format
        .chars()
        .any(|c| c != 'a' && !INFO.iter().any(|(letter, _)| *letter == c))
    {
        return None;
    }
    let format = if format.is_empty() { "s" } else { format };
    let all = format.contains('a');
    let parts: Vec<&str> = INFO
        .iter()
        .filter(|(letter, _)| all || format.contains(*letter))
        .map(|(_, value)| *value)
        .collect();
    Some(parts.join(" "))
}

fn bootloader_info(query: Option<&str>) -> Outcome {
    match query {
        None => ok(&build(|v: &mut BootloaderInfoResponse| {
            v.bootloader = Some("MCUboot".to_owned());
        })),
        // Swap using move, MCUboot's usual mode on Zephyr boards without scratch.
        Some("mode") => ok(&build(|v: &mut BootloaderInfoResponse| {
            v.mode = Some(3);
        })),
        Some(_) => Outcome::Group(QUERY_YIELDS_NO_ANSWER),
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `yyyy-mm-ddThh:mm:ss`, optionally with `.ffffff` and a `Z` or `+hh:mm` suffix that
/// is ignored (the device keeps local time), as Zephyr's datetime parser accepts.
fn parse_datetime(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(range)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

fn format_datetime(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_round_trips() {
        for text in [
            "1970-01-01T00:00:00",
            "2026-11-27T21:38:52",
            "2000-02-29T23:59:59",
        ] {
            let secs = parse_datetime(text).expect(text);
            assert_eq!(format_datetime(secs), text);
        }
        assert_eq!(
            parse_datetime("2026-11-27T21:38:52.123Z")
                .map(format_datetime)
                .as_deref(),
            Some("2026-11-27T21:38:52")
        );
        assert_eq!(parse_datetime("1970-01-02T00:00:00"), Some(86_400));
        for bad in [
            "",
            "2026-13-01T00:00:00",
            "2026-11-27 21:38:52",
            "yyyy-mm-ddThh:mm:ss",
            "2026-11-27T24:00:00",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn info_formats() {
        assert_eq!(os_info("s").as_deref(), Some("Zephyr"));
        assert_eq!(
            os_info("vs").as_deref(),
            Some("Zephyr 4.4.0"),
            "Zephyr's order"
        );
        assert_eq!(os_info("").as_deref(), Some("Zephyr"));
        assert_eq!(
            os_info("a").as_deref(),
            Some("Zephyr unknown smp-sim 4.4.0 smp-sim build posix x86 smp_sim/native Zephyr")
        );
        assert_eq!(os_info("q"), None);
        assert_eq!(os_info("sS"), None);
    }
}
