//! The process-wide bound on bytes held for unfinished fragmented messages
//! (`--max-buffered-bytes`). Connection actors report what they hold; a message that would take the
//! total over the bound is refused like one over the per-message buffer.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes in reassembly across every connection, against a limit.
#[derive(Debug)]
pub struct ReassemblyBudget {
    used: AtomicUsize,
    limit: usize,
}

impl ReassemblyBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        ReassemblyBudget {
            used: AtomicUsize::new(0),
            limit,
        }
    }

    /// Bytes that may still be buffered.
    pub fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.used.load(Ordering::Relaxed))
    }

    /// Bytes buffered now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Records that a connection now holds `delta` more (or fewer) bytes.
    pub fn adjust(&self, delta: isize) {
        if delta >= 0 {
            self.used.fetch_add(delta.unsigned_abs(), Ordering::Relaxed);
        } else {
            self.used.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_shrinks_and_grows_back() {
        let budget = ReassemblyBudget::new(100);
        budget.adjust(60);
        assert_eq!(budget.remaining(), 40);
        budget.adjust(60);
        assert_eq!(budget.remaining(), 0);
        budget.adjust(-120);
        assert_eq!(budget.remaining(), 100);
        assert_eq!(budget.used(), 0);
    }
}
