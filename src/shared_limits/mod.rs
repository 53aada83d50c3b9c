//! Per-client-IP budgets (issue 17): messages and bytes per second per client IP, across every
//! connection of that IP, and with `--redis-url` across every agent sharing one Redis.
//!
//! A frame never waits for Redis. The agent keeps, per client IP, a local lease of tokens in a
//! bounded map (`--max-tracked-ips`, least recently seen evicted, idle IPs freed) and decides
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

pub use redis_link::BadRedisUrl;

/// An IP with no frame for this long is forgotten (its unspent lease given back).
const IDLE_AFTER_NANOS: u64 = clock::secs(30);
/// How often idle IPs are looked for.
const SWEEP_PERIOD: Duration = Duration::from_secs(1);
/// Default for `--max-tracked-ips`.
pub const DEFAULT_MAX_TRACKED_IPS: u64 = 100_000;

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

/// One client IP as tracked here.
#[derive(Debug)]
pub struct IpEntry {
    ip: Arc<str>,
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
    entries: DashMap<Arc<str>, Arc<IpEntry>>,
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

    /// Counts one client-to-server data frame of `ip` (`starts_message`: its first frame) and
    /// says whether it is over the IP's budget. Never waits: a lease call it needs is queued.
    pub fn check(
        &self,
        ip: &Arc<str>,
        starts_message: bool,
        bytes: usize,
        limits: IpLimits,
        now: u64,
    ) -> Option<OverBudget> {
        if limits.is_off() {
            return None;
        }
        let entry = self.entry(ip, now);
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

    /// Client IPs tracked now.
    pub fn tracked_ips(&self) -> usize {
        self.entries.len()
    }

    fn entry(&self, ip: &Arc<str>, now: u64) -> Arc<IpEntry> {
        if let Some(entry) = self.entries.get(&**ip) {
            entry.last_seen_nanos.store(now, Ordering::Relaxed);
            return Arc::clone(entry.value());
        }
        if self.entries.len() >= self.max_tracked {
            self.evict_least_recent();
        }
        let entry = self
            .entries
            .entry(Arc::clone(ip))
            .or_insert_with(|| {
                Arc::new(IpEntry {
                    ip: Arc::clone(ip),
                    last_seen_nanos: AtomicU64::new(now),
                    state: Mutex::new(IpState::default()),
                })
            })
            .value()
            .clone();
        self.metrics.tracked_ips.set(self.entries.len() as f64);
        entry
    }

    /// Evicts the least recently seen IPs so that one more fits, plus 1% of the bound so that a
    /// stream of new IPs does not pay a full scan each.
    fn evict_least_recent(&self) {
        let excess = (self.entries.len() + 1).saturating_sub(self.max_tracked);
        let count = excess + self.max_tracked / 100;
        let mut by_age: Vec<(u64, Arc<str>)> = self
            .entries
            .iter()
            .map(|e| {
                (
                    e.last_seen_nanos.load(Ordering::Relaxed),
                    Arc::clone(e.key()),
                )
            })
            .collect();
        let count = count.clamp(1, by_age.len().max(1)).min(by_age.len());
        if count == 0 {
            return;
        }
        if count < by_age.len() {
            by_age.select_nth_unstable_by_key(count - 1, |(seen, _)| *seen);
        }
        for (_, ip) in by_age.into_iter().take(count) {
            self.forget(&ip);
        }
    }

    /// Forgets `ip`, giving its unspent lease back to Redis.
    fn forget(&self, ip: &str) {
        let Some((ip, entry)) = self.entries.remove(ip) else {
            return;
        };
        let mut state = entry.state();
        let unspent = state.evict();
        let limits = state.limits();
        drop(state);
        if let (Some(tokens), Some(link)) = (unspent, &self.link) {
            if let Err(request) = link.try_send(LinkRequest::GiveBack { ip, limits, tokens }) {
                self.metrics.queue_refused.increment(1);
                drop_request(request);
            }
        }
    }

    fn sweep(&self, now: u64) {
        let idle: Vec<Arc<str>> = self
            .entries
            .iter()
            .filter(|e| {
                now.saturating_sub(e.last_seen_nanos.load(Ordering::Relaxed)) >= IDLE_AFTER_NANOS
            })
            .map(|e| Arc::clone(e.key()))
            .collect();
        for ip in idle {
            self.forget(&ip);
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
