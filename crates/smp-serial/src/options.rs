//! What a serial transport is set up with: framing, sizing, pacing.

use std::time::Duration;

use smp_transport::header;

use crate::console::{self, LineLength};
use crate::error::{OptionsError, ParsePacingError};

/// How SMP frames are put on the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Framing {
    /// Zephyr's "SMP over console" (`CONFIG_MCUMGR_TRANSPORT_UART`, and what MCUboot serial
    /// recovery speaks by default): length, frame and CRC16 in base64 lines that start
    /// with `06 09` or `04 14`. Other text on the line (logs, a shell) is skipped. What the
    /// reference's `SMPSerialTransport` speaks. See [`console`](crate::console).
    #[default]
    Console,
    /// The bare frame, header and payload, as Zephyr's raw UART transport
    /// (`CONFIG_MCUMGR_TRANSPORT_RAW_UART`) and MCUboot's `BOOT_SERIAL_RAW_PROTOCOL` take
    /// it: the header's length tells where a frame ends, so nothing else may share the
    /// line. The reference's `SMPSerialRawTransport`. See [`raw`](crate::raw).
    Raw,
    /// The frame and its CRC16, COBS-encoded between `00` bytes (MCUboot's
    /// `BOOT_SERIAL_RAW_PROTOCOL_COBS`). The reference's `SMPSerialRawTransport` with
    /// `framing=Cobs()`. See [`cobs`](crate::cobs).
    RawCobs,
}

/// How fast the lines of a message are written: some devices drop lines that arrive in a
/// burst.
///
/// At most [`burst`](Self::burst) console lines go out back to back; before the next one
/// the transport waits until [`pause`](Self::pause) has passed since the last write. The
/// count carries over from one message to the next, so two short messages sent at once
/// are paced as one long one. Raw framings are not paced: a frame goes out in one write,
/// and native_sim's raw UART takes a whole 384-byte frame that way.
///
/// Zephyr's UART transport receives into a few line buffers
/// (`CONFIG_UART_MCUMGR_RX_BUF_COUNT`, 2 by default) that its work queue empties; over a
/// pseudo-terminal nothing slows the writer down, and native_sim's UART, which takes
/// input about every 10 ms, loses every message of more than two lines written at once.
/// Measured on its `serial` fixture with 5-line messages: 2 lines then 20 ms, 30 of 30
/// answered; 2 lines then 15 ms, 21 of 30; 3 lines then 20 ms, none. Hence the pacing
/// that works everywhere: 2 lines, then [`DEFAULT_PAUSE`](Self::DEFAULT_PAUSE) (20 ms).
/// On a real UART the baud rate spaces lines anyway (two 127-byte lines take 22 ms at
/// 115,200 baud, and a paced write only queues behind them), so the pause costs little
/// there; over a pty or TCP it adds 20 ms for every two lines after the first two of a
/// message, which made uploads 3 times slower on MCUboot's emulated recovery and 2,000
/// times on a pty that takes bursts.
///
/// So the default is [`auto`](Self::auto): no pacing until the client notes a lost
/// request or reply ([`Transport::note_loss`](smp_transport::Transport::note_loss)),
/// then 2 lines and 20 ms for the rest of the connection. A device that drops bursts
/// costs one lost message, found within round trips by the client's probes. A reply
/// slower than the client's learned timer counts as a loss too: pacing then starts
/// needlessly, which costs speed, never delivery. Code that drives a
/// [`SerialTransport`](crate::SerialTransport) without `smp-client` must call
/// `note_loss` itself, or choose fixed pacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pacing {
    burst: usize,
    pause: Duration,
    /// Unpaced until the first loss.
    until_loss: bool,
}

impl Pacing {
    /// Lines written back to back by default.
    pub const DEFAULT_BURST: usize = 2;
    /// Pause after each burst by default.
    pub const DEFAULT_PAUSE: Duration = Duration::from_millis(20);

    /// The longest pause taken: far beyond any device's need, and short enough that a
    /// deadline computed from it cannot overflow.
    pub const MAX_PAUSE: Duration = Duration::from_secs(60);

    /// Up to `burst` lines back to back, then `pause` since the last write. A burst of 0
    /// counts as 1, a pause longer than [`MAX_PAUSE`](Self::MAX_PAUSE) as that.
    pub const fn new(burst: usize, pause: Duration) -> Self {
        Self {
            burst: if burst == 0 { 1 } else { burst },
            pause: if pause.as_nanos() > Self::MAX_PAUSE.as_nanos() {
                Self::MAX_PAUSE
            } else {
                pause
            },
            until_loss: false,
        }
    }

    /// The default: no pacing until the first loss, then [`DEFAULT_BURST`](Self::DEFAULT_BURST)
    /// lines and [`DEFAULT_PAUSE`](Self::DEFAULT_PAUSE).
    pub const fn auto() -> Self {
        Self {
            until_loss: true,
            ..Self::new(Self::DEFAULT_BURST, Self::DEFAULT_PAUSE)
        }
    }

    /// No pacing at all: every message in one write, as the reference client does.
    pub const fn none() -> Self {
        Self {
            burst: usize::MAX,
            pause: Duration::ZERO,
            until_loss: false,
        }
    }

    /// `delay` between any two lines.
    pub const fn per_line(delay: Duration) -> Self {
        Self::new(1, delay)
    }

    /// Lines written back to back before a pause.
    pub const fn burst(&self) -> usize {
        self.burst
    }

    /// The least time between the last write of a burst and the next write.
    pub const fn pause(&self) -> Duration {
        self.pause
    }

    /// True when lines go unpaced until the client notes a loss ([`auto`](Self::auto)).
    pub const fn until_loss(&self) -> bool {
        self.until_loss
    }

    /// True when nothing is ever delayed.
    pub fn is_none(&self) -> bool {
        self.burst == usize::MAX || self.pause.is_zero()
    }
}

impl Default for Pacing {
    fn default() -> Self {
        Self::auto()
    }
}

/// `auto`, `none`, or `BURST:MS` (the pause in milliseconds, fractions shown where there
/// are any): what [`FromStr`](std::str::FromStr) reads back.
impl std::fmt::Display for Pacing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_none() {
            return f.write_str("none");
        }
        if *self == Self::auto() {
            return f.write_str("auto");
        }
        write!(f, "{}:{}", self.burst, self.pause.as_secs_f64() * 1000.0)
    }
}

/// Reads `auto` (or `default`: [`Pacing::auto`]), `none`, or `BURST:MS`: up to BURST lines
/// back to back, then a pause of MS milliseconds (a decimal number, at most
/// [`Pacing::MAX_PAUSE`]), from the first message on. `2:20` is what `auto` turns into
/// after a loss; `1:5` waits 5 ms between any two lines; a pause of 0 is no pacing.
impl std::str::FromStr for Pacing {
    type Err = ParsePacingError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason| ParsePacingError {
            text: text.to_owned(),
            reason,
        };
        match text.trim() {
            "auto" | "default" => return Ok(Self::auto()),
            "none" => return Ok(Self::none()),
            _ => {}
        }
        let (burst, ms) = text
            .trim()
            .split_once(':')
            .ok_or_else(|| error("not a known name and no `:`"))?;
        let burst: usize = burst
            .parse()
            .map_err(|_| error("the burst is not a whole number of lines"))?;
        if burst == 0 {
            return Err(error("a burst holds at least one line"));
        }
        let ms: f64 = ms
            .parse()
            .map_err(|_| error("the pause is not a number of milliseconds"))?;
        if !(0.0..=Self::MAX_PAUSE.as_secs_f64() * 1000.0).contains(&ms) {
            return Err(error("the pause is negative or longer than 60 s"));
        }
        Ok(Self::new(burst, Duration::from_secs_f64(ms / 1000.0)))
    }
}

/// The settings of a [`SerialTransport`](crate::SerialTransport): framing, how large a
/// message the device takes, and pacing.
///
/// How large a message may be (the transport's
/// [`max_unencoded_size`](smp_transport::Transport::max_unencoded_size)) follows the
/// reference client, `smpclient` 7.3.0:
/// - console framing with a known [`buf_size`](Self::buf_size) (the device's
///   `CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE`, which MCUmgr parameters report): `buf_size - 4`,
///   as the decoded length field and CRC share that buffer (its `BufferSize` strategy);
/// - console framing without it: what survives base64 and line framing within
///   `line_length × line_buffers` encoded bytes (its `BufferParams` strategy; with the
///   defaults, 128 × 2, that is 169 B, the reference's size before it reads the device's
///   parameters), see [`console::max_frame_for_line_buffers`];
/// - raw framings: `buf_size`, by default 384 B (Zephyr's default buffer size).
///
/// ```
/// use smp_serial::{Framing, SerialOptions};
///
/// let options = SerialOptions::default();
/// assert_eq!(options.max_unencoded_size(), Ok(169));
/// assert_eq!(options.clone().buf_size(384).max_unencoded_size(), Ok(380));
/// assert_eq!(options.clone().line_buffers(4).max_unencoded_size(), Ok(341));
/// assert_eq!(options.framing(Framing::Raw).max_unencoded_size(), Ok(384));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SerialOptions {
    /// How frames are put on the line. Default: [`Framing::Console`].
    pub framing: Framing,
    /// The longest console line the device takes, delimiter and newline included
    /// (Zephyr's `CONFIG_UART_MCUMGR_RX_BUF_SIZE`). Lines carry
    /// `(line_length - 4) / 4 * 4` base64 characters. Default: 128.
    pub line_length: usize,
    /// How many lines the device buffers (Zephyr's `CONFIG_UART_MCUMGR_RX_BUF_COUNT`):
    /// sizes console messages when [`buf_size`](Self::buf_size) is unknown. Default: 2.
    pub line_buffers: usize,
    /// The device's SMP buffer (`buf_size` of its MCUmgr parameters), when known: sizes
    /// messages for every framing. Default: unknown.
    pub buf_size: Option<usize>,
    /// Line pacing. Default: [`Pacing::default`].
    pub pacing: Pacing,
}

impl SerialOptions {
    /// Default console line length.
    pub const DEFAULT_LINE_LENGTH: usize = console::DEFAULT_LINE_LENGTH;
    /// Default number of line buffers (the reference's assumption before it knows the
    /// device's buffer size).
    pub const DEFAULT_LINE_BUFFERS: usize = 2;
    /// The buffer size raw framings assume when none is given (Zephyr's default
    /// `CONFIG_MCUMGR_TRANSPORT_NETBUF_SIZE`, the reference's default raw MTU).
    pub const DEFAULT_RAW_BUF_SIZE: usize = 384;

    /// These options with another framing.
    #[must_use]
    pub fn framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// These options with another console line length.
    #[must_use]
    pub fn line_length(mut self, line_length: usize) -> Self {
        self.line_length = line_length;
        self
    }

    /// These options with another number of device line buffers.
    #[must_use]
    pub fn line_buffers(mut self, line_buffers: usize) -> Self {
        self.line_buffers = line_buffers;
        self
    }

    /// These options with the device's buffer size known.
    #[must_use]
    pub fn buf_size(mut self, buf_size: usize) -> Self {
        self.buf_size = Some(buf_size);
        self
    }

    /// These options with other pacing.
    #[must_use]
    pub fn pacing(mut self, pacing: Pacing) -> Self {
        self.pacing = pacing;
        self
    }

    /// The console line length, checked.
    pub fn checked_line_length(&self) -> Result<LineLength, OptionsError> {
        LineLength::new(self.line_length)
    }

    /// The largest SMP frame (header and CBOR) one message may carry with these settings;
    /// an error when that is less than a header, or the line length carries no data.
    pub fn max_unencoded_size(&self) -> Result<usize, OptionsError> {
        let (buffer, room) = match (self.framing, self.buf_size) {
            (Framing::Console, buf_size) => {
                self.checked_line_length()?;
                match buf_size {
                    Some(buf_size) => (buf_size, console::max_frame_for_buf_size(buf_size)),
                    None => (
                        self.line_length.saturating_mul(self.line_buffers),
                        console::max_frame_for_line_buffers(self.line_length, self.line_buffers),
                    ),
                }
            }
            (Framing::Raw | Framing::RawCobs, buf_size) => {
                let buf_size = buf_size.unwrap_or(Self::DEFAULT_RAW_BUF_SIZE);
                (buf_size, buf_size)
            }
        };
        if room < header::SIZE {
            return Err(OptionsError::NoRoom {
                buffer,
                room,
                needed: header::SIZE,
            });
        }
        Ok(room)
    }

    /// The link's MTU as the reference reports it: the device's buffer size when known,
    /// else the encoded budget `line_length × line_buffers` (console) or 384 (raw).
    pub fn mtu(&self) -> usize {
        match (self.framing, self.buf_size) {
            (_, Some(buf_size)) => buf_size,
            (Framing::Console, None) => self.line_length.saturating_mul(self.line_buffers),
            (Framing::Raw | Framing::RawCobs, None) => Self::DEFAULT_RAW_BUF_SIZE,
        }
    }
}

impl Default for SerialOptions {
    fn default() -> Self {
        Self {
            framing: Framing::default(),
            line_length: Self::DEFAULT_LINE_LENGTH,
            line_buffers: Self::DEFAULT_LINE_BUFFERS,
            buf_size: None,
            pacing: Pacing::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizing_follows_the_reference() {
        let console = SerialOptions::default();
        assert_eq!(console.max_unencoded_size(), Ok(169));
        assert_eq!(console.mtu(), 256);
        let known = console.clone().buf_size(96);
        assert_eq!((known.max_unencoded_size(), known.mtu()), (Ok(92), 96));
        let line512 = console.clone().line_length(512).line_buffers(1);
        assert_eq!(
            (line512.max_unencoded_size(), line512.mtu()),
            (Ok(371), 512)
        );
        let raw = console.clone().framing(Framing::Raw);
        assert_eq!((raw.max_unencoded_size(), raw.mtu()), (Ok(384), 384));
        let cobs = raw.framing(Framing::RawCobs).buf_size(1024);
        assert_eq!((cobs.max_unencoded_size(), cobs.mtu()), (Ok(1024), 1024));
    }

    #[test]
    fn settings_that_cannot_carry_a_header_are_refused() {
        let console = SerialOptions::default();
        assert_eq!(
            console.clone().line_length(7).max_unencoded_size(),
            Err(OptionsError::LineTooShort {
                line_length: 7,
                min: 8
            })
        );
        // The reference accepts 16 × 2 (1 B of room); no frame fits in it.
        assert_eq!(
            console
                .clone()
                .line_length(16)
                .line_buffers(2)
                .max_unencoded_size(),
            Err(OptionsError::NoRoom {
                buffer: 32,
                room: 1,
                needed: 8
            })
        );
        assert!(matches!(
            console.clone().line_buffers(0).max_unencoded_size(),
            Err(OptionsError::NoRoom { room: 0, .. })
        ));
        assert!(matches!(
            console.clone().buf_size(11).max_unencoded_size(),
            Err(OptionsError::NoRoom { room: 7, .. })
        ));
        assert_eq!(console.clone().buf_size(12).max_unencoded_size(), Ok(8));
        assert!(matches!(
            console
                .framing(Framing::Raw)
                .buf_size(7)
                .max_unencoded_size(),
            Err(OptionsError::NoRoom { room: 7, .. })
        ));
        // Absurd sizes saturate instead of overflowing (and leave no room per line).
        let huge = SerialOptions::default()
            .line_length(usize::MAX)
            .line_buffers(usize::MAX);
        assert!(huge.max_unencoded_size().is_err());
        assert_eq!(huge.mtu(), usize::MAX);
        let long = SerialOptions::default()
            .line_length(usize::MAX)
            .line_buffers(1);
        assert!(long.max_unencoded_size().is_ok());
    }

    #[test]
    fn pacing() {
        let default = Pacing::default();
        assert_eq!(
            (default.burst(), default.pause()),
            (2, Duration::from_millis(20))
        );
        assert!(!default.is_none());
        assert!(default.until_loss());
        assert_eq!(default, Pacing::auto());
        assert!(!Pacing::new(2, Duration::from_millis(20)).until_loss());
        assert!(Pacing::none().is_none());
        assert!(Pacing::new(3, Duration::ZERO).is_none());
        assert_eq!(Pacing::new(0, Duration::from_millis(1)).burst(), 1);
        assert_eq!(Pacing::new(2, Duration::MAX).pause(), Pacing::MAX_PAUSE);
        assert_eq!(Pacing::per_line(Duration::from_millis(2)).burst(), 1);
    }

    #[test]
    fn pacing_reads_and_prints_as_text() {
        let read = |text: &str| text.parse::<Pacing>();
        assert_eq!(read("default"), Ok(Pacing::auto()));
        assert_eq!(read("auto"), Ok(Pacing::auto()));
        let fixed = Pacing::new(2, Duration::from_millis(20));
        assert_eq!(read("2:20"), Ok(fixed));
        assert_eq!(read(" none "), Ok(Pacing::none()));
        assert_eq!(
            read("1:2.5"),
            Ok(Pacing::per_line(Duration::from_micros(2500)))
        );
        assert!(read("4:0").is_ok_and(|p| p.is_none()));
        for bad in [
            "", "fast", "2", "0:20", "-1:20", "2:x", "2:-1", "2:60001", "2:NaN",
        ] {
            let err = read(bad).expect_err(bad);
            assert_eq!(err.text, bad);
            assert!(err.to_string().contains("BURST:MS"), "{err}");
        }
        for pacing in [
            Pacing::default(),
            fixed,
            Pacing::none(),
            Pacing::per_line(Duration::from_micros(2500)),
        ] {
            assert_eq!(read(&pacing.to_string()), Ok(pacing), "{pacing}");
        }
        assert_eq!(Pacing::default().to_string(), "auto");
        assert_eq!(fixed.to_string(), "2:20");
        assert_eq!(Pacing::none().to_string(), "none");
    }
}
