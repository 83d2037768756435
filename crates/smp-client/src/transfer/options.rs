//! The public settings and summaries of transfers.

use std::num::NonZeroUsize;
use std::time::Duration;

#[cfg(doc)]
use crate::Client;
use crate::HashAlgorithm;

/// How far a transfer has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Bytes the device has confirmed.
    pub done: u64,
    /// Size of the whole transfer.
    pub total: u64,
}

/// Settings of [`Client::upload_image`]: the defaults, changed with the `with_*`
/// methods.
///
/// ```
/// use std::num::NonZeroUsize;
/// use std::time::Duration;
/// use smp_client::ImageUploadOptions;
///
/// let options = ImageUploadOptions::default()
///     .with_upgrade(true)
///     .with_first_timeout(Duration::from_secs(60))
///     .with_window(NonZeroUsize::new(4));
/// assert_eq!(options.image, Some(0));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ImageUploadOptions {
    /// Image number (multi-image devices); `None` leaves it to the device (image 0).
    pub image: Option<u32>,
    /// Ask the device to refuse an image that is not newer than the running one.
    pub upgrade: bool,
    /// Per-attempt timeout of the first chunk, which may wait for a slot erase. The first
    /// chunk learns a retransmission timer of its own, apart from the other chunks (see
    /// [`RetryPolicy`](crate::RetryPolicy)); until it has, usually for the whole first
    /// upload of a client, an attempt waits this long, unless the device answers a probe
    /// meanwhile, which shows that the chunk or its reply was lost.
    pub first_timeout: Duration,
    /// Per-attempt timeout of the last chunk, which may wait for the image check; its
    /// timer too is learned apart, as for [`first_timeout`](Self::first_timeout).
    pub last_timeout: Duration,
    /// Most chunks in flight at once. `None` (the default) is automatic: as many as the
    /// device's buffers hold, [`Client::max_in_flight`] (`buf_count - 1` from its MCUmgr
    /// parameters, 1 when it does not report them). A number only lowers that: the
    /// device's buffers always bound the window. `Some(1)` sends one chunk at a time.
    pub window: Option<NonZeroUsize>,
}

impl Default for ImageUploadOptions {
    fn default() -> Self {
        Self {
            image: Some(0),
            upgrade: false,
            first_timeout: Duration::from_secs(40),
            last_timeout: Duration::from_secs(10),
            window: None,
        }
    }
}

/// What a finished upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadSummary {
    /// Image size.
    pub len: u64,
    /// SHA-256 of the image, as announced to the device.
    pub sha256: [u8; 32],
    /// Offset the device reported on the first reply: non-zero when it resumed an
    /// interrupted upload of the same image.
    pub resumed_at: u64,
    /// Chunk requests sent. A chunk sent again from the device's offset after a loss
    /// counts again; a re-send of the same frame after a timeout does not.
    pub chunks: u64,
    /// The device's `match` on the last reply, when it sent one. When that reply was
    /// lost and the device had forgotten the complete upload meanwhile (Zephyr does),
    /// `Some(true)` means its image state lists the image's hash for the slot.
    pub matched: Option<bool>,
    /// The most chunks that were in flight at once (1: one chunk at a time).
    pub max_in_flight: usize,
}

/// Settings of [`Client::upload_file`] and [`Client::download_file`]: the defaults,
/// changed with the `with_*` methods.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FileTransferOptions {
    /// Compare the device's SHA-256 (or CRC32) of the file with the local data afterwards,
    /// when the device can compute one.
    pub verify: bool,
    /// Most chunks in flight at once, uploading or downloading, as
    /// [`ImageUploadOptions::window`]: `None` (the default) as many as the device's
    /// buffers hold.
    pub window: Option<NonZeroUsize>,
}

crate::with_setters!(ImageUploadOptions {
    /// Sets [`image`](Self::image).
    with_image => image: Option<u32>,
    /// Sets [`upgrade`](Self::upgrade).
    with_upgrade => upgrade: bool,
    /// Sets [`first_timeout`](Self::first_timeout).
    with_first_timeout => first_timeout: Duration,
    /// Sets [`last_timeout`](Self::last_timeout).
    with_last_timeout => last_timeout: Duration,
    /// Sets [`window`](Self::window).
    with_window => window: Option<NonZeroUsize>,
});

crate::with_setters!(FileTransferOptions {
    /// Sets [`verify`](Self::verify).
    with_verify => verify: bool,
    /// Sets [`window`](Self::window).
    with_window => window: Option<NonZeroUsize>,
});

impl Default for FileTransferOptions {
    fn default() -> Self {
        Self {
            verify: true,
            window: None,
        }
    }
}

/// What a finished file transfer did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileTransferSummary {
    /// File size.
    pub len: u64,
    /// Chunks exchanged.
    pub chunks: u64,
    /// The check that compared the device's file with the local data, or `None` when
    /// the device offers neither SHA-256 nor CRC32 (or `verify` was off).
    pub verified_with: Option<HashAlgorithm>,
    /// The most chunks that were in flight at once (always 1 for a download).
    pub max_in_flight: usize,
}

impl Progress {
    /// `done` of `total` bytes.
    pub fn new(done: u64, total: u64) -> Self {
        Self { done, total }
    }
}
