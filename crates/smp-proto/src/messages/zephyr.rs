//! Zephyr basic management (group 63): erase the storage partition.

use smp_header::{command::zephyr as cmd, group};

use super::{Empty, request};
use crate::smp_map;

smp_map! {
    /// Erase the storage partition (command 0, write); answered by [`Empty`].
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
    pub struct EraseStorageRequest;
}

request!(EraseStorageRequest => Empty, group::ZEPHYR, cmd::ERASE_STORAGE, Write);

#[cfg(test)]
mod tests {

    use super::*;
    use crate::messages::test_util::check;

    #[test]
    fn round_trips() {
        assert_eq!(check(&EraseStorageRequest), [0xa0]);
    }
}
