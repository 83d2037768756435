//! The device: everything it keeps, and what a reboot does to it. Each group's part of
//! the state is a module here; the handlers that serve it are in `groups`.

pub(crate) mod fs;
pub(crate) mod image;
pub(crate) mod settings;

use std::time::Instant;

use tracing::info;

use self::fs::FileSystem;
use self::image::Images;
use self::settings::Settings;
use crate::config::SimConfig;

/// Everything the device keeps; one work queue owns it.
#[derive(Debug)]
pub(crate) struct Device {
    pub(crate) config: SimConfig,
    pub(crate) images: Images,
    pub(crate) fs: FileSystem,
    pub(crate) settings: Settings,
    pub(crate) booted: Instant,
    /// Seconds between the device's clock and the host's, once set by `datetime`.
    pub(crate) clock_offset: Option<i64>,
    /// Requests processed since boot (the `smp_svr_stats` counter).
    pub(crate) requests: u64,
}

impl Device {
    pub(crate) fn new(config: SimConfig) -> std::io::Result<Self> {
        Ok(Self {
            images: Images::new(&config)?,
            fs: FileSystem::new(config.fs_root.clone()),
            settings: Settings::default(),
            booted: Instant::now(),
            clock_offset: None,
            requests: 0,
            config,
        })
    }

    /// The device reboots: RAM state is lost, the bootloader swaps a pending image.
    pub(crate) fn reboot(&mut self) {
        info!("device reboots");
        self.images.reboot();
        self.fs.reboot();
        self.booted = Instant::now();
        self.clock_offset = None;
        self.requests = 0;
    }
}
