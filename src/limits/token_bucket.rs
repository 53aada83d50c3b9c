//! A token bucket whose rate and capacity are passed on every call, so that a reconfigured rate
//! applies at once while the bucket keeps its current level.

/// Tokens in a bucket and when they were last counted. 16 bytes.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    last_refill_nanos: u64,
}

impl TokenBucket {
    /// A full bucket of `capacity` tokens at time `now_nanos`.
    pub fn full(capacity: f64, now_nanos: u64) -> Self {
        TokenBucket {
            tokens: capacity,
            last_refill_nanos: now_nanos,
        }
    }

    /// Refills at `rate_per_sec` up to `capacity`, then takes `amount` tokens if that many are
    /// there. Returns whether they were taken; a refused request takes nothing.
    pub fn try_take(
        &mut self,
        amount: f64,
        rate_per_sec: f64,
        capacity: f64,
        now_nanos: u64,
    ) -> bool {
        let elapsed = now_nanos.saturating_sub(self.last_refill_nanos) as f64 / 1e9;
        self.last_refill_nanos = now_nanos.max(self.last_refill_nanos);
        self.tokens = (self.tokens + elapsed * rate_per_sec).min(capacity);
        if self.tokens >= amount {
            self.tokens -= amount;
            true
        } else {
            false
        }
    }

    /// Tokens available as of the last call (for diagnostics).
    pub fn level(&self) -> f64 {
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn burst_then_steady_rate() {
        let mut bucket = TokenBucket::full(3.0, 0);
        assert!(bucket.try_take(1.0, 2.0, 3.0, 0));
        assert!(bucket.try_take(1.0, 2.0, 3.0, 0));
        assert!(bucket.try_take(1.0, 2.0, 3.0, 0));
        assert!(!bucket.try_take(1.0, 2.0, 3.0, 0));
        // Half a second at 2 tokens/s gives one token back.
        assert!(bucket.try_take(1.0, 2.0, 3.0, SEC / 2));
        assert!(!bucket.try_take(1.0, 2.0, 3.0, SEC / 2));
        // Never more than the capacity, however long the pause.
        let later = 100 * SEC;
        for _ in 0..3 {
            assert!(bucket.try_take(1.0, 2.0, 3.0, later));
        }
        assert!(!bucket.try_take(1.0, 2.0, 3.0, later));
    }

    #[test]
    fn refusal_takes_nothing_and_new_rate_keeps_level() {
        let mut bucket = TokenBucket::full(10.0, 0);
        assert!(!bucket.try_take(11.0, 1.0, 10.0, 0));
        assert_eq!(bucket.level(), 10.0);
        assert!(bucket.try_take(4.0, 1.0, 10.0, 0));
        // Reconfigured to 100/s with capacity 200: the level carries over.
        assert!(bucket.try_take(6.0, 100.0, 200.0, 0));
        assert!(!bucket.try_take(1.0, 100.0, 200.0, 0));
    }

    #[test]
    fn clock_going_backwards_does_not_add_tokens() {
        let mut bucket = TokenBucket::full(1.0, 5 * SEC);
        assert!(bucket.try_take(1.0, 1.0, 1.0, 5 * SEC));
        assert!(!bucket.try_take(1.0, 1.0, 1.0, SEC));
    }
}
