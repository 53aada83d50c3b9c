//! Per-client-IP budgets (issue 17): messages and bytes per second per client IP, across every
//! connection of that IP, and with `--redis-url` across every agent sharing one Redis.
//!
//! A budget belongs to a client IP *and* a scope ([`BudgetKey`]): the default scope, shared by
//! every route without `ip-*` limits of its own, or one route's own (a policy-file route that
//! sets any `ip-*` key). The scope is fixed per compiled policy ([`Policy::ip_budget_scope`]).
//!
//! A frame never waits for Redis. The agent keeps, per budget, a local lease of tokens in a
//! bounded map (`--max-tracked-ips`, least recently seen evicted, idle ones freed) and decides
//! frames from it ([`entry`]); when a lease runs low a background task ([`redis_link`]) leases a
//! block from the IP's shared bucket in Redis with one atomic Lua script call ([`script`]), at most
//! one call in flight and one per 100 ms per IP, and gives unspent tokens back when the IP is
//! forgotten. Redis unreachable or slower than 20 ms: local buckets with the limits divided by
//! `--redis-peers-hint`, health DEGRADED, until a probe gets an answer. Without `--redis-url` the
//! limits are counted in this agent alone.
//!
//! [`over_budget_verdict`] is the one place where the answer to a frame over its IP budget is
//! chosen.

pub mod entry;
pub mod metrics;
pub mod redis_link;
pub mod script;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use dashmap::DashMap;

use entry::{Charge, IpState};
pub use entry::{Counting, IpLimits, OverBudget};
use metrics::SharedLimitMetrics;
use redis_link::{drop_request, LinkRequest, RedisLink};

use crate::clock;
use crate::model::{AuditTag, ReasonCode, Verdict};
use crate::options::PolicyOptions;
use crate::pipeline::rate_violation;
#[cfg(doc)]
use crate::policy::Policy;
use crate::telemetry::throttle::LogThrottle;

pub use redis_link::BadRedisUrl;

/// An IP with no frame for this long is forgotten (its unspent lease given back).
const IDLE_AFTER_NANOS: u64 = clock::secs(30);
/// How often idle IPs are looked for.
const SWEEP_PERIOD: Duration = Duration::from_secs(1);
/// The warning about frames without a client IP: at most one line per second.
static WITHOUT_IP_LINES: LogThrottle = LogThrottle::new();

/// Default for `--max-tracked-ips`.
pub const DEFAULT_MAX_TRACKED_IPS: u64 = 100_000;
/// The scope of the default budget (the default policy's, shared by routes without their own).
pub const DEFAULT_SCOPE: &str = "";

/// Which budget a frame counts against: its client IP under a scope (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BudgetKey {
    /// [`DEFAULT_SCOPE`], or the name of the route whose own budget this is.
    pub scope: Arc<str>,
    /// The client IP.
    pub ip: Arc<str>,
}

/// Start-up settings of the per-IP limits (options, not policy: a push cannot change them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedLimitSettings {
    /// `--redis-url`; `None` counts in this agent alone.
    pub redis_url: Option<String>,
    /// `--redis-peers-hint`: agents sharing the budget (the fallback divides by it).
    pub peers_hint: u32,
    /// `--max-tracked-ips`.
    pub max_tracked_ips: usize,
}

impl Default for SharedLimitSettings {
    fn default() -> Self {
        SharedLimitSettings {
            redis_url: None,
            peers_hint: 1,
            max_tracked_ips: DEFAULT_MAX_TRACKED_IPS as usize,
        }
    }
}

/// One budget (client IP and scope) as tracked here.
#[derive(Debug)]
pub struct IpEntry {
    key: BudgetKey,
    last_seen_nanos: AtomicU64,
    state: Mutex<IpState>,
}

impl IpEntry {
    /// The IP's counting state (held only for a few arithmetic steps).
    fn state(&self) -> MutexGuard<'_, IpState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The per-IP limiter every connection actor shares.
#[derive(Debug)]
pub struct IpLimiter {
    entries: DashMap<BudgetKey, Arc<IpEntry>>,
    max_tracked: usize,
    peers_hint: u32,
    link: Option<RedisLink>,
    metrics: &'static SharedLimitMetrics,
}

impl IpLimiter {
    /// Starts the limiter (and, with a Redis URL, its link task) on the current Tokio runtime.
    pub fn start(settings: &SharedLimitSettings) -> Result<Arc<IpLimiter>, BadRedisUrl> {
        let metrics = SharedLimitMetrics::get();
        let link = match &settings.redis_url {
            Some(url) => Some(RedisLink::start(url, metrics)?),
            None => None,
        };
        let limiter = Arc::new(IpLimiter {
            entries: DashMap::new(),
            max_tracked: settings.max_tracked_ips.max(1),
            peers_hint: settings.peers_hint.max(1),
            link,
            metrics,
        });
        tokio::spawn(sweep_idle(Arc::downgrade(&limiter)));
        Ok(limiter)
    }

    /// Counts one client-to-server data frame of `ip` against its budget in `scope`
    /// (`starts_message`: its first frame) and says whether it is over that budget. Never
    /// waits: a lease call it needs is queued. Allocates nothing unless the budget is new here.
    pub fn check(
        &self,
        scope: &Arc<str>,
        ip: &Arc<str>,
        starts_message: bool,
        bytes: usize,
        limits: IpLimits,
        now: u64,
    ) -> Option<OverBudget> {
        if limits.is_off() {
            return None;
        }
        let key = BudgetKey {
            scope: Arc::clone(scope),
            ip: Arc::clone(ip),
        };
        let entry = self.entry(key, now);
        let counting = self.counting();
        let charge = Charge {
            messages: if starts_message { 1.0 } else { 0.0 },
            bytes: bytes as f64,
        };
        let decision = entry
            .state()
            .decide(charge, &limits, counting, self.peers_hint, now);
        if decision.newly_over {
            self.metrics.ips_over_budget.increment(1);
        }
        if let (Some(want), Some(link)) = (decision.lease, &self.link) {
            let request = LinkRequest::Lease {
                entry,
                limits,
                want,
            };
            if let Err(request) = link.try_send(request) {
                self.metrics.queue_refused.increment(1);
                drop_request(request);
            }
        }
        decision.over
    }

    /// Records a client data frame under a per-IP budget whose client IP is unknown: neither
    /// the frame nor its connection has one (gRPC v2 frame events carry none, and no
    /// RequestHeaders event named the WebSocket's IP). Counted, and logged at most once a second.
    pub fn count_without_ip(&self, correlation_id: &str) {
        self.metrics.frames_without_ip.increment(1);
        if let Some(suppressed) = WITHOUT_IP_LINES.event() {
            tracing::warn!(
                correlation_id = %crate::util::for_log(correlation_id),
                suppressed,
                counted_in = crate::telemetry::names::FRAMES_WITHOUT_CLIENT_IP,
                "per-IP budgets cannot apply to this WebSocket's frames: they carry no client IP and no RequestHeaders event named one for its correlation id (gRPC v2 frame events never carry it; send the route's request headers to the agent)"
            );
        }
    }

    /// How frames are counted now.
    pub fn counting(&self) -> Counting {
        match &self.link {
            None => Counting::InProcess,
            Some(link) if link.is_shared() => Counting::Shared,
            Some(_) => Counting::Fallback,
        }
    }

    /// Why the per-IP limits are counted locally although a Redis is configured (for health).
    pub fn degraded_reason(&self) -> Option<String> {
        let reason = self.link.as_ref()?.fallback_reason()?;
        Some(format!(
            "per-IP limits counted locally (limits / {} peers): {reason}",
            self.peers_hint
        ))
    }

    /// Budgets (client IP and scope) tracked now.
    pub fn tracked_ips(&self) -> usize {
        self.entries.len()
    }

    fn entry(&self, key: BudgetKey, now: u64) -> Arc<IpEntry> {
        if let Some(entry) = self.entries.get(&key) {
            entry.last_seen_nanos.store(now, Ordering::Relaxed);
            return Arc::clone(entry.value());
        }
        if self.entries.len() >= self.max_tracked {
            self.evict_least_recent();
        }
        let entry = self
            .entries
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(IpEntry {
                    key,
                    last_seen_nanos: AtomicU64::new(now),
                    state: Mutex::new(IpState::default()),
                })
            })
            .value()
            .clone();
        self.metrics.tracked_ips.set(self.entries.len() as f64);
        entry
    }

    /// Evicts the least recently seen budgets so that one more fits, plus 1% of the bound so
    /// that a stream of new IPs does not pay a full scan each.
    fn evict_least_recent(&self) {
        let excess = (self.entries.len() + 1).saturating_sub(self.max_tracked);
        let count = excess + self.max_tracked / 100;
        let mut by_age: Vec<(u64, BudgetKey)> = self
            .entries
            .iter()
            .map(|e| (e.last_seen_nanos.load(Ordering::Relaxed), e.key().clone()))
            .collect();
        let count = count.clamp(1, by_age.len().max(1)).min(by_age.len());
        if count == 0 {
            return;
        }
        if count < by_age.len() {
            by_age.select_nth_unstable_by_key(count - 1, |(seen, _)| *seen);
        }
        for (_, key) in by_age.into_iter().take(count) {
            self.forget(&key);
        }
    }

    /// Forgets a budget, giving its unspent lease back to Redis.
    fn forget(&self, key: &BudgetKey) {
        let Some((key, entry)) = self.entries.remove(key) else {
            return;
        };
        let mut state = entry.state();
        let unspent = state.evict();
        let limits = state.limits();
        drop(state);
        if let (Some(tokens), Some(link)) = (unspent, &self.link) {
            if let Err(request) = link.try_send(LinkRequest::GiveBack {
                key,
                limits,
                tokens,
            }) {
                self.metrics.queue_refused.increment(1);
                drop_request(request);
            }
        }
    }

    fn sweep(&self, now: u64) {
        let idle: Vec<BudgetKey> = self
            .entries
            .iter()
            .filter(|e| {
                now.saturating_sub(e.last_seen_nanos.load(Ordering::Relaxed)) >= IDLE_AFTER_NANOS
            })
            .map(|e| e.key().clone())
            .collect();
        for key in idle {
            self.forget(&key);
        }
        self.metrics.tracked_ips.set(self.entries.len() as f64);
    }
}

async fn sweep_idle(limiter: Weak<IpLimiter>) {
    let mut ticker = tokio::time::interval(SWEEP_PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        let Some(limiter) = limiter.upgrade() else {
            return;
        };
        limiter.sweep(clock::now_nanos());
    }
}

/// The per-IP limits of a policy.
pub fn limits_of(options: &PolicyOptions) -> IpLimits {
    IpLimits {
        messages_per_sec: options.ip_max_messages_per_sec,
        bytes_per_sec: options.ip_max_bytes_per_sec,
        burst: options.ip_burst,
    }
}

/// The answer to a frame over its client IP's budget, tagged `ws-ip-rate-limit`: the policy's
/// `rate-limit-action` as for the per-connection rates (close 1008, or drop a whole message; a
/// fragment of a longer message is always closed), allowed and tagged in detect-only mode.
pub fn over_budget_verdict(
    options: &PolicyOptions,
    over: OverBudget,
    whole_message: bool,
) -> Verdict {
    let (reason, reason_code) = match over {
        OverBudget::Messages => (
            "Policy violation: client IP message rate limit exceeded",
            ReasonCode::IpMessageRate,
        ),
        OverBudget::Bytes => (
            "Policy violation: client IP byte rate limit exceeded",
            ReasonCode::IpByteRate,
        ),
    };
    rate_violation(
        options,
        whole_message,
        AuditTag::IpRateLimit,
        reason,
        reason_code,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(messages: u32) -> IpLimits {
        IpLimits {
            messages_per_sec: messages,
            bytes_per_sec: 0,
            burst: 0,
        }
    }

    #[tokio::test]
    async fn one_ip_has_a_budget_per_scope() {
        let limiter = IpLimiter::start(&SharedLimitSettings::default()).unwrap();
        let ip: Arc<str> = Arc::from("198.51.100.1");
        let default: Arc<str> = Arc::from(DEFAULT_SCOPE);
        let chat: Arc<str> = Arc::from("chat");
        let allowed = |scope: &Arc<str>, limit: u32, n: usize| {
            (0..n)
                .filter(|_| {
                    limiter
                        .check(scope, &ip, true, 1, limits(limit), 0)
                        .is_none()
                })
                .count()
        };
        assert_eq!(allowed(&chat, 2, 5), 2);
        assert_eq!(
            allowed(&default, 4, 6),
            4,
            "the default scope is not chat's"
        );
        // A scope is matched by content (a reload compiles a new `Arc` for the same route).
        assert_eq!(allowed(&Arc::from("chat"), 2, 1), 0);
        assert_eq!(limiter.tracked_ips(), 2);
    }

    #[tokio::test]
    async fn the_bound_counts_budgets_not_ips() {
        let settings = SharedLimitSettings {
            max_tracked_ips: 2,
            ..SharedLimitSettings::default()
        };
        let limiter = IpLimiter::start(&settings).unwrap();
        let ip: Arc<str> = Arc::from("198.51.100.1");
        for (n, scope) in ["a", "b", "c"].into_iter().enumerate() {
            limiter.check(&Arc::from(scope), &ip, true, 1, limits(1), n as u64);
        }
        assert_eq!(limiter.tracked_ips(), 2);
        // `a` was the least recently seen: forgotten, so its budget starts full again.
        assert!(limiter
            .check(&Arc::from("a"), &ip, true, 1, limits(1), 3)
            .is_none());
    }
}
