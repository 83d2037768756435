//! A pipelined file download without IO: which offsets to ask for next, and the file the
//! answers build. The async [`Client::download_file`](crate::Client::download_file) drives
//! it; tests drive it directly.
//!
//! The device decides how much of the file each answer carries: as much as fits its
//! buffer. The first answer (offset 0, asked alone) gives the file's length and that
//! chunk size, and later requests ask for the offsets one chunk apart, up to a window of
//! them in flight. An answer shorter than its chunk leaves a gap, asked for before
//! anything new; an answer longer than its chunk covers part of the next one, which
//! changes nothing (the bytes are the file's either way).

use std::collections::VecDeque;
use std::ops::Range;

use crate::TransferError;

/// The state of one download.
#[derive(Debug)]
pub(crate) struct DownloadPlan {
    name: String,
    total: u64,
    /// The file so far; bytes not received yet are zero.
    data: Vec<u8>,
    /// Byte ranges received: sorted, disjoint and not touching.
    have: Vec<Range<u64>>,
    /// The device's chunk size: its first answer's.
    chunk: u64,
    /// Every offset below this was asked for once.
    cursor: u64,
    /// Ranges whose answers came back short, to ask for again.
    gaps: VecDeque<Range<u64>>,
    /// Requests in flight: the range each was meant to fetch.
    asked: Vec<Range<u64>>,
    window: usize,
    requests: u64,
    peak: usize,
}

impl DownloadPlan {
    /// A download of `name` whose first answer (to offset 0) carried `off`, `len` and
    /// `data`, keeping at most `window` requests in flight.
    pub(crate) fn start(
        name: &str,
        off: u64,
        len: Option<u64>,
        data: &[u8],
        window: usize,
    ) -> Result<Self, TransferError> {
        let total = len.ok_or_else(|| TransferError::UnknownLength {
            name: name.to_owned(),
        })?;
        // The first request, answered: `on_reply` below takes it out again.
        let mut asked = Vec::with_capacity(window.clamp(1, 256));
        asked.push(0..data.len() as u64);
        let mut plan = Self {
            name: name.to_owned(),
            total,
            data: Vec::new(),
            have: Vec::new(),
            chunk: data.len() as u64,
            cursor: data.len() as u64,
            gaps: VecDeque::new(),
            asked,
            window: window.max(1),
            requests: 1,
            peak: 1,
        };
        plan.on_reply(0, off, data)?;
        Ok(plan)
    }

    /// The size of the file.
    pub(crate) fn len(&self) -> u64 {
        self.total
    }

    /// Bytes received so far.
    pub(crate) fn received(&self) -> u64 {
        self.have.iter().map(|range| range.end - range.start).sum()
    }

    /// True once every byte of the file has been received.
    pub(crate) fn is_done(&self) -> bool {
        self.received() == self.total
    }

    /// Requests sent, the first included.
    pub(crate) fn requests(&self) -> u64 {
        self.requests
    }

    /// Most requests that were in flight at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak
    }

    /// Requests in flight.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.asked.len()
    }

    /// The offset to ask for next, if the window has room and something is left to ask
    /// for; it counts as in flight from now on.
    pub(crate) fn next_request(&mut self) -> Option<u64> {
        if self.asked.len() >= self.window || self.is_done() {
            return None;
        }
        let range = loop {
            match self.gaps.pop_front() {
                Some(gap) => {
                    // Another answer may have covered part of it meanwhile.
                    if let Some(start) = self.first_missing(&gap) {
                        break start..gap.end;
                    }
                }
                None if self.cursor < self.total => {
                    let start = self.cursor;
                    self.cursor = (start + self.chunk).min(self.total);
                    break start..self.cursor;
                }
                None => return None,
            }
        };
        let off = range.start;
        self.asked.push(range);
        self.requests += 1;
        self.peak = self.peak.max(self.asked.len());
        Some(off)
    }

    /// Takes the answer to the request for offset `asked`: the device sent `data` from
    /// offset `off`.
    pub(crate) fn on_reply(
        &mut self,
        asked: u64,
        off: u64,
        data: &[u8],
    ) -> Result<(), TransferError> {
        let name = || self.name.clone();
        let total = self.total;
        let index = self
            .asked
            .iter()
            .position(|range| range.start == asked)
            .ok_or_else(|| TransferError::Unasked {
                name: name(),
                off: asked,
            })?;
        let range = self.asked.swap_remove(index);
        if off != asked {
            return Err(TransferError::WrongOffset {
                name: name(),
                asked,
                sent: off,
            });
        }
        let end = off
            .checked_add(data.len() as u64)
            .filter(|&end| end <= total)
            .ok_or_else(|| TransferError::BeyondLength {
                name: name(),
                len: total,
            })?;
        if data.is_empty() && off < total {
            return Err(TransferError::NoData {
                name: name(),
                off,
                len: total,
            });
        }
        // Within the length, which the caller holds in memory when it is done.
        let too_large = || TransferError::TooLarge {
            name: name(),
            len: total,
        };
        let start = usize::try_from(off).map_err(|_| too_large())?;
        let stop = usize::try_from(end).map_err(|_| too_large())?;
        if self.data.len() < stop {
            self.data.resize(stop, 0);
        }
        self.data[start..stop].copy_from_slice(data);
        self.add(off..end);
        if end < range.end {
            self.gaps.push_back(end..range.end);
        }
        Ok(())
    }

    /// A request ran out of attempts, and the download goes on (see
    /// [`Persistence`](super::persistence::Persistence)). The requests in flight met the
    /// same silence: every range in flight is asked for again, in order, before anything
    /// new.
    pub(crate) fn on_exhausted(&mut self) {
        self.asked.sort_by_key(|range| range.start);
        for range in self.asked.drain(..).rev() {
            self.gaps.push_front(range);
        }
    }

    /// The whole file, once [`is_done`](Self::is_done).
    pub(crate) fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// The first offset in `range` not received yet.
    fn first_missing(&self, range: &Range<u64>) -> Option<u64> {
        let mut start = range.start;
        for have in &self.have {
            if have.start <= start && start < have.end {
                start = have.end;
            }
        }
        (start < range.end).then_some(start)
    }

    /// Records `range` as received, merging it with the ranges it overlaps or touches.
    fn add(&mut self, range: Range<u64>) {
        if range.is_empty() {
            return;
        }
        let (mut start, mut end) = (range.start, range.end);
        self.have.retain(|have| {
            let apart = have.end < start || end < have.start;
            if !apart {
                start = start.min(have.start);
                end = end.max(have.end);
            }
            apart
        });
        let at = self.have.partition_point(|have| have.start < start);
        self.have.insert(at, start..end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 13 % 251) as u8).collect()
    }

    /// A device whose answers carry `chunk` bytes from the asked offset.
    fn answer(file: &[u8], off: u64, chunk: usize) -> &[u8] {
        let start = off as usize;
        &file[start..(start + chunk).min(file.len())]
    }

    #[test]
    fn after_a_request_runs_out_everything_in_flight_is_asked_again_in_order() {
        let data = file(1000);
        let mut plan = DownloadPlan::start("/f", 0, Some(1000), answer(&data, 0, 100), 3).unwrap();
        let asked: Vec<u64> = std::iter::from_fn(|| plan.next_request()).collect();
        assert_eq!(asked, [100, 200, 300]);
        plan.on_reply(200, 200, answer(&data, 200, 100)).unwrap();
        plan.on_exhausted();
        assert_eq!(plan.in_flight(), 0);
        let again: Vec<u64> = std::iter::from_fn(|| plan.next_request()).collect();
        assert_eq!(again, [100, 300, 400]);
        for off in [100, 300, 400] {
            plan.on_reply(off, off, answer(&data, off, 100)).unwrap();
        }
        while let Some(off) = plan.next_request() {
            plan.on_reply(off, off, answer(&data, off, 100)).unwrap();
        }
        assert!(plan.is_done());
        assert_eq!(plan.into_data(), data);
    }

    #[test]
    fn the_first_answer_sets_the_chunk_then_the_window_fills() {
        let data = file(1000);
        let mut plan = DownloadPlan::start("/f", 0, Some(1000), &data[..300], 3).unwrap();
        assert_eq!(plan.in_flight(), 0);
        let asked: Vec<u64> = std::iter::from_fn(|| plan.next_request()).collect();
        assert_eq!(asked, [300, 600, 900]);
        // Answers in any order.
        for off in [900, 300, 600] {
            plan.on_reply(off, off, answer(&data, off, 300)).unwrap();
        }
        assert!(plan.is_done());
        assert_eq!((plan.requests(), plan.peak()), (4, 3));
        assert_eq!(plan.into_data(), data);
    }

    #[test]
    fn a_short_answer_leaves_a_gap_that_is_asked_first() {
        let data = file(1000);
        let mut plan = DownloadPlan::start("/f", 0, Some(1000), &data[..400], 2).unwrap();
        assert_eq!(plan.next_request(), Some(400));
        assert_eq!(plan.next_request(), Some(800));
        plan.on_reply(400, 400, answer(&data, 400, 150)).unwrap();
        assert_eq!(plan.next_request(), Some(550));
        plan.on_reply(800, 800, answer(&data, 800, 400)).unwrap();
        assert_eq!(plan.next_request(), None);
        plan.on_reply(550, 550, answer(&data, 550, 400)).unwrap();
        assert!(plan.is_done());
        assert_eq!(plan.into_data(), data);
    }

    #[test]
    fn bad_answers_are_errors() {
        let data = file(100);
        let no_len = DownloadPlan::start("/f", 0, None, &data[..10], 2).unwrap_err();
        assert_eq!(no_len, TransferError::UnknownLength { name: "/f".into() });
        assert_eq!(no_len.to_string(), "the device did not say how long /f is");
        let mut plan = DownloadPlan::start("/f", 0, Some(100), &data[..10], 2).unwrap();
        let off = plan.next_request().unwrap();
        let moved = plan.on_reply(off, 20, &data[20..30]).unwrap_err();
        assert_eq!(
            moved,
            TransferError::WrongOffset {
                name: "/f".into(),
                asked: 10,
                sent: 20
            }
        );
        let off = plan.next_request().unwrap();
        let long = plan.on_reply(off, off, &[0; 200]).unwrap_err();
        assert_eq!(
            long,
            TransferError::BeyondLength {
                name: "/f".into(),
                len: 100
            }
        );
        let off = plan.next_request().unwrap();
        let empty = plan.on_reply(off, off, &[]).unwrap_err();
        assert!(matches!(empty, TransferError::NoData { len: 100, .. }));
        let unasked = plan.on_reply(77, 77, &data[77..80]).unwrap_err();
        assert!(matches!(unasked, TransferError::Unasked { off: 77, .. }));
        // A length a device made up costs only the memory of what it really sends.
        let mut huge = DownloadPlan::start("/f", 0, Some(u64::MAX), &data[..10], 1).unwrap();
        let off = huge.next_request().unwrap();
        huge.on_reply(off, off, &data[10..20]).unwrap();
        assert_eq!(huge.received(), 20);
        assert!(huge.data.capacity() < 1000);
    }

    #[test]
    fn an_empty_file_is_done_at_once() {
        let plan = DownloadPlan::start("/f", 0, Some(0), &[], 4).unwrap();
        assert!(plan.is_done());
        assert!(plan.into_data().is_empty());
    }

    proptest! {
        /// Whatever the chunk sizes the device picks and the order its answers come in,
        /// the plan asks only for what it lacks, never exceeds its window and ends with
        /// the exact file.
        #[test]
        fn any_answers_give_the_exact_file(
            len in 1usize..20_000,
            first in 1usize..2000,
            sizes in proptest::collection::vec(1usize..3000, 1..64),
            order in proptest::collection::vec(any::<proptest::sample::Index>(), 1..64),
            window in 1usize..8,
        ) {
            let data = file(len);
            let first = first.min(len);
            let mut plan = DownloadPlan::start("/f", 0, Some(len as u64), &data[..first], window).unwrap();
            let mut in_flight = Vec::new();
            let mut step = 0;
            while !plan.is_done() {
                while let Some(off) = plan.next_request() {
                    prop_assert!(off < len as u64);
                    in_flight.push(off);
                }
                prop_assert!(in_flight.len() <= window);
                prop_assert!(!in_flight.is_empty(), "stalled at {} of {len}", plan.received());
                let off = in_flight.swap_remove(order[step % order.len()].index(in_flight.len()));
                let size = sizes[step % sizes.len()];
                plan.on_reply(off, off, answer(&data, off, size)).unwrap();
                step += 1;
                prop_assert!(step < 100_000);
            }
            prop_assert_eq!(plan.into_data(), data);
        }
    }
}
