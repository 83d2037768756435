//! Frame buffers handed back by the layer above, reused for later frames.

use std::sync::{Mutex, PoisonError};

/// A small free list of frame buffers, so that a transport that is handed back the
/// frames it returned ([`Transport::recycle`](crate::Transport::recycle)) receives later
/// frames without allocating.
///
/// The pool keeps at most `max_frames` buffers and none larger than
/// [`MAX_KEPT`](Self::MAX_KEPT) bytes; a pool of 0 frames keeps nothing and copies each
/// frame into a buffer of its exact size.
///
/// ```
/// use smp_transport::FramePool;
///
/// let pool = FramePool::new(4);
/// let frame = pool.copy_of(b"a reply");
/// let buffer = frame.as_ptr();
/// pool.give_back(frame);
/// // The next frame reuses the buffer.
/// assert_eq!(pool.copy_of(b"another").as_ptr(), buffer);
/// ```
#[derive(Debug)]
pub struct FramePool {
    spare: Mutex<Vec<Vec<u8>>>,
    max_frames: usize,
}

impl FramePool {
    /// The largest buffer the pool keeps: a whole UDP datagram's worth of frame. A
    /// larger frame (split over datagrams) is rare, and its buffer is freed.
    pub const MAX_KEPT: usize = 2048;

    /// What a buffer the pool may keep is allocated with at least, so that it fits the
    /// replies of a transfer (whose lengths differ by a few bytes) without growing.
    const MIN_CAPACITY: usize = 256;

    /// A pool that keeps at most `max_frames` buffers.
    pub const fn new(max_frames: usize) -> Self {
        Self {
            spare: Mutex::new(Vec::new()),
            max_frames,
        }
    }

    /// A frame holding a copy of `bytes`, in a kept buffer when there is one.
    pub fn copy_of(&self, bytes: &[u8]) -> Vec<u8> {
        if let Some(mut frame) = self.spare().pop() {
            frame.clear();
            frame.extend_from_slice(bytes);
            return frame;
        }
        if self.max_frames == 0 || bytes.len() > Self::MAX_KEPT {
            return bytes.to_vec();
        }
        let mut frame = Vec::with_capacity(bytes.len().max(Self::MIN_CAPACITY));
        frame.extend_from_slice(bytes);
        frame
    }

    /// Keeps `frame`'s buffer for a later frame, unless the pool is full or the buffer
    /// too large.
    pub fn give_back(&self, frame: Vec<u8>) {
        if frame.capacity() == 0 || frame.capacity() > Self::MAX_KEPT {
            return;
        }
        let mut spare = self.spare();
        if spare.len() < self.max_frames {
            // Reserved once, up to `max_frames`: keeping a buffer never allocates after.
            let room = self.max_frames - spare.len();
            spare.reserve_exact(room);
            spare.push(frame);
        }
    }

    /// Buffers kept now.
    pub fn len(&self) -> usize {
        self.spare().len()
    }

    /// True when no buffer is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn spare(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        // A list of spare buffers is valid whatever a panicking holder left in it.
        self.spare.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_up_to_the_bound() {
        let pool = FramePool::new(2);
        let frames: Vec<Vec<u8>> = (0..3u8).map(|i| pool.copy_of(&[i; 10])).collect();
        assert!(frames.iter().all(|frame| frame.capacity() >= 256));
        for frame in frames {
            pool.give_back(frame);
        }
        assert_eq!(pool.len(), 2);
        let again = pool.copy_of(&[9; 300]);
        assert_eq!(again, [9; 300]);
        assert_eq!(pool.len(), 1);
    }

    #[test]
    fn large_buffers_and_an_empty_pool_keep_nothing() {
        let pool = FramePool::new(4);
        let large = pool.copy_of(&[1; FramePool::MAX_KEPT + 1]);
        assert_eq!(large.len(), FramePool::MAX_KEPT + 1);
        pool.give_back(large);
        pool.give_back(Vec::new());
        assert!(pool.is_empty());

        let none = FramePool::new(0);
        let frame = none.copy_of(b"exact");
        assert_eq!(frame.capacity(), 5);
        none.give_back(frame);
        assert!(none.is_empty());
    }
}
