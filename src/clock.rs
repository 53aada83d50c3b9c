//! A cheap monotonic clock in nanoseconds since the process started, so that per-connection state
//! can store timestamps in 8 bytes instead of an `Instant`. It reads tokio's clock (the system's
//! monotonic clock, unless a test pauses time), so idle and hibernation rules can be tested in
//! virtual time.

use std::sync::OnceLock;
use tokio::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call in this process (monotonic).
pub fn now_nanos() -> u64 {
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Converts seconds to the clock's unit.
pub const fn secs(seconds: u64) -> u64 {
    seconds.saturating_mul(1_000_000_000)
}
