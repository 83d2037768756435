//! The settings group's state: an in-memory settings tree.

use std::collections::BTreeMap;

/// The device's settings.
#[derive(Debug, Default)]
pub(crate) struct Settings {
    pub(crate) values: BTreeMap<String, Vec<u8>>,
}

impl Settings {
    /// Erases every setting (the zephyr group's storage erase).
    pub(crate) fn erase(&mut self) {
        self.values.clear();
    }
}
