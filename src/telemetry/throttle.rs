//! Log lines that a peer can cause at will (refused and timed-out connections, undecodable
//! frames, detector restarts) are written at most once per second per site, with the count of
//! the events the previous line did not show.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock;

/// Shortest time between two lines of one site.
const INTERVAL_NANOS: u64 = 1_000_000_000;

/// One log site's throttle; make it a `static`.
#[derive(Debug)]
pub struct LogThrottle {
    /// When the last line was written (0: never).
    last_nanos: AtomicU64,
    /// Events since the last line that were not written.
    suppressed: AtomicU64,
}

impl LogThrottle {
    /// A throttle that lets its first line through.
    pub const fn new() -> Self {
        LogThrottle {
            last_nanos: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Records one event: `Some(n)` when a line may be written now, `n` being the events since the
    /// last line that were not written; `None` when this one is only counted.
    pub fn event(&self) -> Option<u64> {
        self.event_at(clock::now_nanos().max(1))
    }

    fn event_at(&self, now: u64) -> Option<u64> {
        let last = self.last_nanos.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < INTERVAL_NANOS {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if self
            .last_nanos
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            // Another thread writes this second's line.
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::AcqRel))
    }
}

impl Default for LogThrottle {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_second_with_the_count_of_the_rest() {
        let throttle = LogThrottle::new();
        assert_eq!(throttle.event_at(5), Some(0));
        for n in 1..=100 {
            assert_eq!(throttle.event_at(5 + n), None);
        }
        assert_eq!(throttle.event_at(5 + INTERVAL_NANOS), Some(100));
        assert_eq!(throttle.event_at(6 + INTERVAL_NANOS), None);
    }
}
