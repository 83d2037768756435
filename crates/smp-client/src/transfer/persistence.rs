//! When a transfer outlives a request that ran out of attempts: [`Persistence`].

/// Whether a transfer goes on after one of its requests ran out of attempts.
///
/// The retry policy's `retries` bounds each request's attempts, and a lone request that
/// runs out of them fails with [`ClientError::Timeout`](crate::ClientError::Timeout). A
/// transfer of hundreds of chunks over a lossy link would then fail now and then although
/// the device never stopped answering (at 10% loss each way, one chunk in 800 loses four
/// attempts in a row). So a transfer asks again, with a new request, when the device holds
/// more than it did when a request last ran out (or than at the start), and gives up when
/// a request runs out twice with nothing gained in between. A device that stops
/// answering mid-transfer is reported after two rounds of attempts, one at the start (it
/// never answered) after one.
#[derive(Debug, Default)]
pub(crate) struct Persistence {
    /// The most the device held when a request last ran out.
    mark: u64,
}

impl Persistence {
    /// A request ran out of attempts while the device held `done` bytes of the transfer:
    /// whether to ask again rather than give up.
    pub(crate) fn ask_again(&mut self, done: u64) -> bool {
        let gained = done > self.mark;
        self.mark = self.mark.max(done);
        gained
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_that_runs_out_is_asked_again_only_after_progress() {
        let mut persistence = Persistence::default();
        // Nothing taken yet: the device may not be there at all.
        assert!(!persistence.ask_again(0));
        assert!(persistence.ask_again(100));
        // Out again with nothing taken in between: give up.
        assert!(!persistence.ask_again(100));
        assert!(persistence.ask_again(300));
        // Back below the furthest point reached (the device lost data): no gain.
        assert!(!persistence.ask_again(200));
    }
}
