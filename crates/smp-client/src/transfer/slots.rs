//! An upload's requests in flight.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// The requests of an upload in flight, each a future in a pinned slot of its own.
///
/// A slot is reused once its request has ended ([`Pin::set`] replaces the future in
/// place), so an upload of thousands of chunks allocates only as many slots as it ever
/// had requests in flight at once. Slots in use come first, oldest first.
pub(crate) struct JobSlots<F> {
    slots: Vec<(u64, Pin<Box<Option<F>>>)>,
    /// How many slots (at the front) hold a request.
    active: usize,
}

impl<F: Future> JobSlots<F> {
    pub(crate) fn new() -> Self {
        Self {
            slots: Vec::new(),
            active: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.active == 0
    }

    /// Starts tracking request `id`, answered by `job`.
    pub(crate) fn start(&mut self, id: u64, job: F) {
        if self.active == self.slots.len() {
            self.slots.push((id, Box::pin(Some(job))));
        } else {
            let (slot_id, slot) = &mut self.slots[self.active];
            *slot_id = id;
            slot.set(Some(job));
        }
        self.active += 1;
    }

    /// Drops the request in slot `index` and moves the free slot behind those in use.
    fn free(&mut self, index: usize) {
        self.slots[index].1.set(None);
        let slot = self.slots.remove(index);
        self.slots.push(slot);
        self.active -= 1;
    }

    /// Drops every request whose id `keep` refuses.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(u64) -> bool) {
        let mut index = 0;
        while index < self.active {
            if keep(self.slots[index].0) {
                index += 1;
            } else {
                self.free(index);
            }
        }
    }

    /// The first request (oldest first) to finish, and its answer; its slot is freed.
    pub(crate) async fn next_answer(&mut self) -> (u64, F::Output) {
        std::future::poll_fn(|cx| {
            for index in 0..self.active {
                let (id, slot) = &mut self.slots[index];
                let Some(job) = slot.as_mut().as_pin_mut() else {
                    continue;
                };
                if let Poll::Ready(output) = job.poll(cx) {
                    let id = *id;
                    self.free(index);
                    return Poll::Ready((id, output));
                }
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn job_slots_answer_oldest_first_and_are_reused() {
        use tokio::sync::oneshot;
        let mut jobs = JobSlots::new();
        let mut senders = Vec::new();
        for id in 1..=3 {
            let (tx, rx) = oneshot::channel::<u64>();
            senders.push(tx);
            jobs.start(id, rx);
        }
        // Jobs 3 and 2 finish together: the older is answered first.
        let [first, second, third] = <[_; 3]>::try_from(senders).unwrap();
        third.send(30).unwrap();
        second.send(20).unwrap();
        assert_eq!(jobs.next_answer().await, (2, Ok(20)));
        assert_eq!(jobs.next_answer().await, (3, Ok(30)));
        assert!(!jobs.is_empty());
        // Dropping a job the plan no longer waits for ends it: its sender sees it gone.
        jobs.retain(|id| id != 1);
        assert!(jobs.is_empty());
        assert!(first.is_closed());
        // New jobs take the freed slots: no new box.
        for id in 4..=6 {
            let (tx, rx) = oneshot::channel::<u64>();
            tx.send(id * 10).unwrap();
            jobs.start(id, rx);
        }
        assert_eq!(jobs.slots.len(), 3);
        assert_eq!(jobs.next_answer().await, (4, Ok(40)));
    }
}
