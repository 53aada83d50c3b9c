//! One client IP's budget as this agent holds it, and the decision for one frame against it.
//!
//! Three ways of counting, chosen per frame by the limiter ([`Counting`]):
//! - `InProcess` (no `--redis-url`): local token buckets with the full limits;
//! - `Shared`: a lease of tokens taken from the IP's bucket in Redis; frames spend the lease and,
//!   when it runs low, ask for a new block (at most one call in flight, at most one call per
//!   [`MIN_LEASE_INTERVAL_NANOS`]); until the IP's first lease answer the local buckets decide,
//!   with the limits divided by `--redis-peers-hint`;
//! - `Fallback` (Redis unreachable or slow): the local buckets with the limits divided by
//!   `--redis-peers-hint`.
//!
//! Pure logic: no clock, no I/O; the limiter passes `now` and sends what [`IpState::decide`] asks.

use crate::limits::TokenBucket;

/// At most one Redis call per IP per agent per this many nanoseconds (100 ms).
pub const MIN_LEASE_INTERVAL_NANOS: u64 = 100_000_000;
/// A lease block covers this many seconds of the IP's whole budget, so that one agent serving
/// every connection of an IP can spend the full budget with one call per 100 ms.
const LEASE_WINDOW_SECS: f64 = 0.2;

/// The per-IP limits in force for a frame (from the running policy). 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IpLimits {
    /// Messages per second per client IP.
    pub messages_per_sec: u32,
    /// Payload bytes per second per client IP.
    pub bytes_per_sec: u64,
    /// Messages an IP may send at once above the per-second rate.
    pub burst: u32,
}

impl IpLimits {
    /// True when neither limit applies.
    pub fn is_off(&self) -> bool {
        self.messages_per_sec == 0 && self.bytes_per_sec == 0
    }

    /// Rate and capacity of the message bucket (`None` when unlimited), divided by `share`.
    pub fn message_bucket(&self, share: f64) -> Option<(f64, f64)> {
        (self.messages_per_sec > 0).then(|| {
            let rate = f64::from(self.messages_per_sec);
            (rate / share, (rate + f64::from(self.burst)) / share)
        })
    }

    /// Rate and capacity (one second of the rate) of the byte bucket, divided by `share`.
    pub fn byte_bucket(&self, share: f64) -> Option<(f64, f64)> {
        (self.bytes_per_sec > 0).then(|| {
            let rate = self.bytes_per_sec as f64;
            (rate / share, rate / share)
        })
    }
}

/// How frames of this IP are counted now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// No Redis configured: local buckets, full limits.
    InProcess,
    /// Redis answers: frames spend the lease.
    Shared,
    /// Redis is unreachable or slow: local buckets, limits divided by the peers hint.
    Fallback,
}

/// What one frame costs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Charge {
    /// 1 for the first frame of a message, else 0.
    pub messages: f64,
    /// Payload bytes.
    pub bytes: f64,
}

/// Which budget a refused frame is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverBudget {
    /// Too many messages per second from this IP.
    Messages,
    /// Too many bytes per second from this IP.
    Bytes,
}

/// Tokens to ask Redis for (whole tokens; 0 when that limit is off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaseWant {
    /// Message tokens.
    pub messages: u64,
    /// Byte tokens.
    pub bytes: u64,
}

/// A frame's outcome and, when the lease should be topped up, the call to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// `None`: allowed.
    pub over: Option<OverBudget>,
    /// A lease call to send now (the state already counts it as in flight).
    pub lease: Option<LeaseWant>,
    /// True on the first refusal after an allowed frame (the IP just went over budget).
    pub newly_over: bool,
}

/// One IP's counting state. About 100 bytes.
#[derive(Debug, Default)]
pub struct IpState {
    local_messages: Option<TokenBucket>,
    local_bytes: Option<TokenBucket>,
    /// Tokens leased from Redis and not spent yet.
    lease_messages: f64,
    lease_bytes: f64,
    /// Set once Redis answered a lease call for this IP.
    lease_answered: bool,
    /// A lease call is in flight.
    in_flight: bool,
    /// When the last lease call was sent (`None`: never).
    last_call_nanos: Option<u64>,
    /// Bytes of the last frame the lease could not cover (the next block covers at least that).
    shortfall_bytes: f64,
    over_budget: bool,
    /// Set when the IP was forgotten: a lease that arrives later is given back at once.
    evicted: bool,
    /// The limits of the last frame (a give-back is capped by their capacity).
    limits: IpLimits,
}

impl IpState {
    /// Decides one frame.
    pub fn decide(
        &mut self,
        charge: Charge,
        limits: &IpLimits,
        counting: Counting,
        peers_hint: u32,
        now: u64,
    ) -> Decision {
        let share = f64::from(peers_hint.max(1));
        self.limits = *limits;
        let over = match counting {
            Counting::InProcess => self.take_local(charge, limits, 1.0, now),
            Counting::Fallback => self.take_local(charge, limits, share, now),
            Counting::Shared if !self.lease_answered => self.take_local(charge, limits, share, now),
            Counting::Shared => self.take_lease(charge, limits),
        };
        let lease = (counting == Counting::Shared)
            .then(|| self.lease_call(limits, now))
            .flatten();
        let newly_over = over.is_some() && !self.over_budget;
        self.over_budget = over.is_some();
        Decision {
            over,
            lease,
            newly_over,
        }
    }

    fn take_local(
        &mut self,
        charge: Charge,
        limits: &IpLimits,
        share: f64,
        now: u64,
    ) -> Option<OverBudget> {
        // Check both before taking from either, so that a refused frame costs nothing.
        let messages = limits
            .message_bucket(share)
            .filter(|_| charge.messages > 0.0);
        let bytes = limits.byte_bucket(share);
        if let Some((rate, capacity)) = messages {
            let bucket = self
                .local_messages
                .get_or_insert_with(|| TokenBucket::full(capacity, now));
            if !bucket.try_take(charge.messages, rate, capacity, now) {
                return Some(OverBudget::Messages);
            }
        }
        if let Some((rate, capacity)) = bytes {
            let bucket = self
                .local_bytes
                .get_or_insert_with(|| TokenBucket::full(capacity, now));
            if !bucket.try_take(charge.bytes, rate, capacity, now) {
                // Give the message token back: the frame is refused whole.
                if let (Some((rate, capacity)), Some(bucket)) = (messages, &mut self.local_messages)
                {
                    bucket.try_take(-charge.messages, rate, capacity, now);
                }
                return Some(OverBudget::Bytes);
            }
        }
        None
    }

    fn take_lease(&mut self, charge: Charge, limits: &IpLimits) -> Option<OverBudget> {
        let counts_messages = limits.messages_per_sec > 0 && charge.messages > 0.0;
        let counts_bytes = limits.bytes_per_sec > 0;
        if counts_messages && self.lease_messages < charge.messages {
            return Some(OverBudget::Messages);
        }
        if counts_bytes && self.lease_bytes < charge.bytes {
            self.shortfall_bytes = charge.bytes;
            return Some(OverBudget::Bytes);
        }
        if counts_messages {
            self.lease_messages -= charge.messages;
        }
        if counts_bytes {
            self.lease_bytes -= charge.bytes;
        }
        None
    }

    /// The lease call to make now, if the lease runs low and the pacing allows one.
    fn lease_call(&mut self, limits: &IpLimits, now: u64) -> Option<LeaseWant> {
        if self.in_flight
            || self
                .last_call_nanos
                .is_some_and(|last| now.saturating_sub(last) < MIN_LEASE_INTERVAL_NANOS)
        {
            return None;
        }
        let want = self.want(limits);
        if want == LeaseWant::default() {
            return None;
        }
        self.in_flight = true;
        self.last_call_nanos = Some(now);
        Some(want)
    }

    /// Tokens that top the lease up to a block (both kinds in one call), when either kind is
    /// below half its block; nothing otherwise. A message block covers at least the IP's burst
    /// (`--ip-burst` messages at once, plus one): at low rates 0.2 s of the rate is a token or
    /// two, and a burst would find nothing leased although Redis holds it for the IP.
    fn want(&self, limits: &IpLimits) -> LeaseWant {
        let block = |rate: f64, floor: f64| (rate * LEASE_WINDOW_SECS).ceil().max(1.0).max(floor);
        let message_block = limits
            .message_bucket(1.0)
            .map(|(rate, capacity)| block(rate, (f64::from(limits.burst) + 1.0).min(capacity)));
        let byte_block = limits
            .byte_bucket(1.0)
            .map(|(rate, capacity)| block(rate, self.shortfall_bytes.min(capacity)));
        let low = message_block.is_some_and(|b| self.lease_messages * 2.0 < b)
            || byte_block.is_some_and(|b| self.lease_bytes * 2.0 < b);
        if !low {
            return LeaseWant::default();
        }
        let top_up = |block: Option<f64>, held: f64| {
            block.map_or(0, |b| (b - held.max(0.0)).max(0.0).ceil() as u64)
        };
        LeaseWant {
            messages: top_up(message_block, self.lease_messages),
            bytes: top_up(byte_block, self.lease_bytes),
        }
    }

    /// Redis granted tokens for this IP. Returns what to give back at once (the IP was
    /// forgotten meanwhile), if anything.
    pub fn leased(&mut self, messages: u64, bytes: u64) -> Option<LeaseWant> {
        self.in_flight = false;
        if self.evicted {
            return Some(LeaseWant { messages, bytes }).filter(|w| *w != LeaseWant::default());
        }
        self.lease_answered = true;
        self.lease_messages += messages as f64;
        self.lease_bytes += bytes as f64;
        if bytes > 0 {
            self.shortfall_bytes = 0.0;
        }
        None
    }

    /// The lease call failed (Redis error or timeout): the next frame may try again after the
    /// pacing interval.
    pub fn lease_failed(&mut self) {
        self.in_flight = false;
    }

    /// The limits of the last frame decided.
    pub fn limits(&self) -> IpLimits {
        self.limits
    }

    /// Marks the IP forgotten and takes its unspent lease (whole tokens) to give back.
    pub fn evict(&mut self) -> Option<LeaseWant> {
        self.evicted = true;
        let unspent = LeaseWant {
            messages: self.lease_messages.max(0.0).floor() as u64,
            bytes: self.lease_bytes.max(0.0).floor() as u64,
        };
        self.lease_messages = 0.0;
        self.lease_bytes = 0.0;
        Some(unspent).filter(|w| *w != LeaseWant::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn limits(messages: u32, bytes: u64) -> IpLimits {
        IpLimits {
            messages_per_sec: messages,
            bytes_per_sec: bytes,
            burst: 0,
        }
    }

    /// How many of `frames` one-message frames the lease allows at once (1 ms in).
    fn allowed_from_lease(state: &mut IpState, l: &IpLimits, frames: usize) -> usize {
        (0..frames)
            .filter(|_| {
                state
                    .decide(message(1.0), l, Counting::Shared, 1, MS)
                    .over
                    .is_none()
            })
            .count()
    }

    fn message(bytes: f64) -> Charge {
        Charge {
            messages: 1.0,
            bytes,
        }
    }

    #[test]
    fn in_process_counts_the_full_limits_locally() {
        let mut state = IpState::default();
        let l = limits(10, 0);
        let allowed = (0..20)
            .filter(|_| {
                state
                    .decide(message(1.0), &l, Counting::InProcess, 4, 0)
                    .over
                    .is_none()
            })
            .count();
        assert_eq!(allowed, 10);
        let decision = state.decide(message(1.0), &l, Counting::InProcess, 4, 0);
        assert_eq!(decision.over, Some(OverBudget::Messages));
        assert_eq!(decision.lease, None);
    }

    #[test]
    fn fallback_divides_the_limits_by_the_peers_hint() {
        let mut state = IpState::default();
        let l = limits(10, 0);
        let allowed = (0..20)
            .filter(|_| {
                state
                    .decide(message(1.0), &l, Counting::Fallback, 2, 0)
                    .over
                    .is_none()
            })
            .count();
        assert_eq!(allowed, 5);
    }

    #[test]
    fn shared_spends_the_lease_and_asks_for_more_paced() {
        let mut state = IpState::default();
        let l = limits(100, 0);
        // First frame: no lease yet, decided locally; a block of 20 (0.2 s of 100/s) is asked.
        let first = state.decide(message(1.0), &l, Counting::Shared, 1, 0);
        assert_eq!(first.over, None);
        assert_eq!(
            first.lease,
            Some(LeaseWant {
                messages: 20,
                bytes: 0
            })
        );
        // One call in flight at most.
        assert_eq!(
            state.decide(message(1.0), &l, Counting::Shared, 1, 0).lease,
            None
        );
        assert_eq!(state.leased(20, 0), None);
        let allowed = allowed_from_lease(&mut state, &l, 30);
        assert_eq!(allowed, 20, "the lease, not the local bucket, decides");
        // Low, but the last call was under 100 ms ago: no call yet.
        assert_eq!(
            state
                .decide(message(1.0), &l, Counting::Shared, 1, 50 * MS)
                .lease,
            None
        );
        let later = state.decide(message(1.0), &l, Counting::Shared, 1, 100 * MS);
        assert_eq!(later.over, Some(OverBudget::Messages));
        assert_eq!(later.lease.map(|w| w.messages), Some(20));
    }

    #[test]
    fn a_lease_covers_the_burst_at_low_rates() {
        let mut state = IpState::default();
        let l = IpLimits {
            messages_per_sec: 1,
            bytes_per_sec: 0,
            burst: 4,
        };
        let first = state.decide(message(1.0), &l, Counting::Shared, 1, 0);
        assert_eq!(
            first.lease.map(|w| w.messages),
            Some(5),
            "0.2 s of 1/s is one token; the burst asks for five"
        );
        assert_eq!(state.leased(5, 0), None);
        let allowed = allowed_from_lease(&mut state, &l, 8);
        assert_eq!(allowed, 5, "a burst of five spends the lease at once");
        // At high rates 0.2 s of the rate is the larger block.
        let l = IpLimits {
            messages_per_sec: 1000,
            bytes_per_sec: 0,
            burst: 10,
        };
        let mut state = IpState::default();
        let first = state.decide(message(1.0), &l, Counting::Shared, 1, 0);
        assert_eq!(first.lease.map(|w| w.messages), Some(200));
    }

    #[test]
    fn a_refused_frame_is_counted_as_newly_over_once() {
        let mut state = IpState::default();
        let l = limits(1, 0);
        assert!(
            !state
                .decide(message(1.0), &l, Counting::InProcess, 1, 0)
                .newly_over
        );
        assert!(
            state
                .decide(message(1.0), &l, Counting::InProcess, 1, 0)
                .newly_over
        );
        assert!(
            !state
                .decide(message(1.0), &l, Counting::InProcess, 1, 0)
                .newly_over
        );
    }

    #[test]
    fn a_byte_refusal_costs_no_message_token() {
        let mut state = IpState::default();
        let l = limits(2, 10);
        assert_eq!(
            state
                .decide(message(20.0), &l, Counting::InProcess, 1, 0)
                .over,
            Some(OverBudget::Bytes)
        );
        for _ in 0..2 {
            assert_eq!(
                state
                    .decide(message(1.0), &l, Counting::InProcess, 1, 0)
                    .over,
                None
            );
        }
    }

    #[test]
    fn a_lease_for_a_forgotten_ip_goes_back() {
        let mut state = IpState::default();
        let l = limits(100, 1000);
        let call = state.decide(message(1.0), &l, Counting::Shared, 1, 0);
        assert!(call.lease.is_some());
        assert_eq!(state.evict(), None);
        assert_eq!(
            state.leased(20, 200),
            Some(LeaseWant {
                messages: 20,
                bytes: 200
            })
        );
        let mut kept = IpState::default();
        kept.decide(message(1.0), &l, Counting::Shared, 1, 0);
        kept.leased(20, 200);
        kept.decide(message(50.0), &l, Counting::Shared, 1, MS);
        assert_eq!(
            kept.evict(),
            Some(LeaseWant {
                messages: 19,
                bytes: 150
            })
        );
    }
}
