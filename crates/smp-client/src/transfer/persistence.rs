//! When a transfer outlives a request that ran out of attempts: [`Persistence`].

/// Whether a transfer goes on after one of its requests ran out of attempts.
///
/// The retry policy's `retries` bounds each request's attempts, and a lone request that
/// runs out of them fails with [`ClientError::Timeout`](crate::ClientError::Timeout). A
/// transfer of hundreds of chunks over a lossy link would then fail now and then although
/// the device never stopped answering (at 10% loss each way, one chunk in 800 loses four
/// attempts in a row). So a transfer asks again, with a new request, when the device has
/// taken something since the last request ran out (or since the transfer started), and
/// gives up when a request runs out twice with nothing taken in between. A device that
/// stops answering mid-transfer is reported after two rounds of attempts, one at the start
/// (it never answered) after one.
#[derive(Debug, Default)]
pub(crate) struct Persistence {
    /// The device took something since the last request ran out.
    progressed: bool,
}

impl Persistence {
    /// The device took data (the transfer moved forward).
    pub(crate) fn progressed(&mut self) {
        self.progressed = true;
    }

    /// A request ran out of attempts: whether to ask again rather than give up.
    pub(crate) fn ask_again(&mut self) -> bool {
        std::mem::take(&mut self.progressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_that_runs_out_is_asked_again_only_after_progress() {
        let mut persistence = Persistence::default();
        // Nothing taken yet: the device may not be there at all.
        assert!(!persistence.ask_again());
        persistence.progressed();
        assert!(persistence.ask_again());
        // Out again with nothing taken in between: give up.
        assert!(!persistence.ask_again());
        persistence.progressed();
        persistence.progressed();
        assert!(persistence.ask_again());
        assert!(!persistence.ask_again());
    }
}
