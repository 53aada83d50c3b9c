//! The agent's link to Redis: one task takes lease and give-back requests from the frame path
//! through a bounded queue and runs each as one script call with a [`CALL_DEADLINE`]. A call that
//! fails or is slower than that turns the link to *fallback* (frames are then counted in local
//! buckets; health is DEGRADED with the reason); probes with exponential backoff, each on a fresh
//! connection, turn it back. The frame path never waits for anything here: it reads one atomic
//! flag and tries a non-blocking send.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use tokio::sync::{mpsc, Notify, Semaphore};

use super::entry::{IpLimits, LeaseWant};
use super::metrics::SharedLimitMetrics;
use super::script::{invocation, LEASE_SCRIPT};
use super::{BudgetKey, IpEntry};
use crate::telemetry::throttle::LogThrottle;

/// A lease call slower than this counts as a Redis failure (the frame path falls back).
pub const CALL_DEADLINE: Duration = Duration::from_millis(20);
/// How long a probe (PING on a fresh connection, connecting included) may take.
const PROBE_DEADLINE: Duration = Duration::from_millis(500);
/// First and longest wait between probes while Redis is unreachable.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Healthy this long after a recovery and the backoff starts from [`BACKOFF_MIN`] again.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);
/// Requests waiting for the link task; more are refused (the frame path counts locally).
const QUEUE_CAPACITY: usize = 4096;
/// Script calls in flight at once.
const MAX_IN_FLIGHT: usize = 256;
/// Longest failure reason kept for health reports and logs.
const MAX_REASON_BYTES: usize = 200;

static FAILURE_LINES: LogThrottle = LogThrottle::new();

/// The Redis URL cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid --redis-url ({reason}); expected redis://HOST:PORT/DB or rediss://HOST:PORT/DB")]
pub struct BadRedisUrl {
    reason: String,
}

/// What the frame path asks of the link.
#[derive(Debug)]
pub(crate) enum LinkRequest {
    /// Lease `want` tokens for `entry`'s budget.
    Lease {
        entry: Arc<IpEntry>,
        limits: IpLimits,
        want: LeaseWant,
    },
    /// Give unspent tokens of a forgotten budget back.
    GiveBack {
        key: BudgetKey,
        limits: IpLimits,
        tokens: LeaseWant,
    },
}

/// Whether Redis answers, and why not.
#[derive(Debug)]
pub(crate) struct LinkStatus {
    fallback: AtomicBool,
    /// The last failure was a call that answered too late (Redis is up but slow), not an error:
    /// the link probes again soon instead of backing off further.
    only_slow: AtomicBool,
    reason: Mutex<Option<String>>,
    failed: Notify,
}

impl LinkStatus {
    fn fail(&self, reason: String, metrics: &SharedLimitMetrics) {
        self.only_slow.store(false, Ordering::Relaxed);
        self.record_failure(reason, metrics);
    }

    /// A call that took longer than [`CALL_DEADLINE`]: frames are counted locally at once, as for
    /// any failure, but a slow answer is not an outage, so the next probe comes after
    /// [`BACKOFF_MIN`] and the backoff does not grow (a host busy for a moment would otherwise
    /// keep the agent counting alone for seconds while its peers share the budget).
    fn slow(&self, reason: String, metrics: &SharedLimitMetrics) {
        self.only_slow.store(true, Ordering::Relaxed);
        self.record_failure(reason, metrics);
    }

    fn record_failure(&self, reason: String, metrics: &SharedLimitMetrics) {
        let reason = crate::util::cut(&reason, MAX_REASON_BYTES).into_owned();
        metrics.redis_errors.increment(1);
        if !self.fallback.swap(true, Ordering::AcqRel) {
            metrics.fallbacks.increment(1);
            metrics.fallback_active.set(1.0);
        }
        if let Some(suppressed) = FAILURE_LINES.event() {
            tracing::warn!(
                reason = %crate::util::for_log(&reason),
                suppressed,
                "Redis unavailable: per-IP limits are counted in this agent (limits divided by --redis-peers-hint) until it answers again"
            );
        }
        *self.reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
        self.failed.notify_one();
    }

    fn recover(&self, metrics: &SharedLimitMetrics) {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if self.fallback.swap(false, Ordering::AcqRel) {
            metrics.fallback_active.set(0.0);
        }
    }
}

/// The frame path's handle on the link task.
#[derive(Debug)]
pub(crate) struct RedisLink {
    sender: mpsc::Sender<LinkRequest>,
    status: Arc<LinkStatus>,
}

impl RedisLink {
    /// Checks the URL and starts the link task (on the current Tokio runtime). Counting starts in
    /// fallback until the first probe answers, at once.
    pub fn start(url: &str, metrics: &'static SharedLimitMetrics) -> Result<Self, BadRedisUrl> {
        if url.starts_with("rediss://") {
            // rustls needs one process-wide provider; the agent uses ring (as for gRPC TLS).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = redis::Client::open(url).map_err(|e| BadRedisUrl {
            reason: crate::util::cut(&e.to_string(), MAX_REASON_BYTES).into_owned(),
        })?;
        let address = client.get_connection_info().addr().to_string();
        let status = Arc::new(LinkStatus {
            fallback: AtomicBool::new(true),
            only_slow: AtomicBool::new(false),
            reason: Mutex::new(Some(format!("connecting to Redis at {address}"))),
            failed: Notify::new(),
        });
        metrics.fallback_active.set(1.0);
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let task = LinkTask {
            client,
            address,
            status: Arc::clone(&status),
            script: Arc::new(Script::new(LEASE_SCRIPT)),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            metrics,
        };
        tokio::spawn(task.run(receiver));
        Ok(RedisLink { sender, status })
    }

    /// True while Redis answers (frames spend leases); false while frames are counted locally.
    pub fn is_shared(&self) -> bool {
        !self.status.fallback.load(Ordering::Relaxed)
    }

    /// Why counting is local now, if it is.
    pub fn fallback_reason(&self) -> Option<String> {
        if self.is_shared() {
            return None;
        }
        self.status
            .reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Queues a request without waiting; gives it back when the queue is full or the task is gone.
    pub fn try_send(&self, request: LinkRequest) -> Result<(), LinkRequest> {
        self.sender.try_send(request).map_err(|error| match error {
            mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
        })
    }
}

struct LinkTask {
    client: redis::Client,
    address: String,
    status: Arc<LinkStatus>,
    script: Arc<Script>,
    in_flight: Arc<Semaphore>,
    metrics: &'static SharedLimitMetrics,
}

impl LinkTask {
    fn manager(&self) -> redis::RedisResult<ConnectionManager> {
        // Reconnection is this task's job (probes with backoff); the manager retries once.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(PROBE_DEADLINE))
            .set_response_timeout(Some(PROBE_DEADLINE))
            .set_number_of_retries(1)
            .set_min_delay(BACKOFF_MIN)
            .set_max_delay(BACKOFF_MAX);
        ConnectionManager::new_lazy_with_config(self.client.clone(), config)
    }

    async fn run(self, mut receiver: mpsc::Receiver<LinkRequest>) {
        let mut connection: Option<ConnectionManager> = None;
        let mut probe_at = Some(tokio::time::Instant::now());
        let mut backoff = BACKOFF_MIN;
        let mut recovered_at: Option<Instant> = None;
        loop {
            let probe_due = async {
                match probe_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                request = receiver.recv() => {
                    let Some(request) = request else { return };
                    match (&connection, self.status.fallback.load(Ordering::Relaxed)) {
                        (Some(connection), false) => self.call(connection.clone(), request),
                        _ => drop_request(request),
                    }
                }
                () = probe_due => {
                    match self.probe().await {
                        Ok(fresh) => {
                            connection = Some(fresh);
                            probe_at = None;
                            recovered_at = Some(Instant::now());
                            self.status.recover(self.metrics);
                            tracing::info!(address = %self.address, "Redis answers: per-IP limits are shared again");
                        }
                        Err(reason) => {
                            self.status.fail(reason, self.metrics);
                            probe_at = Some(tokio::time::Instant::now() + backoff);
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                        }
                    }
                }
                () = self.status.failed.notified() => {
                    if probe_at.is_none() {
                        connection = None;
                        if self.status.only_slow.load(Ordering::Relaxed) {
                            probe_at = Some(tokio::time::Instant::now() + BACKOFF_MIN);
                        } else {
                            if recovered_at.is_some_and(|at| at.elapsed() >= BACKOFF_RESET_AFTER) {
                                backoff = BACKOFF_MIN;
                            }
                            probe_at = Some(tokio::time::Instant::now() + backoff);
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                        }
                    }
                }
            }
        }
    }

    /// A PING on a fresh connection; the connection when Redis answers in time.
    async fn probe(&self) -> Result<ConnectionManager, String> {
        let mut fresh = self
            .manager()
            .map_err(|e| format!("cannot connect to Redis at {}: {e}", self.address))?;
        let started = Instant::now();
        match tokio::time::timeout(
            PROBE_DEADLINE,
            redis::cmd("PING").query_async::<String>(&mut fresh),
        )
        .await
        {
            Ok(Ok(_)) => {
                self.metrics
                    .redis_latency
                    .record(started.elapsed().as_secs_f64());
                Ok(fresh)
            }
            Ok(Err(e)) => Err(format!("Redis at {} failed: {e}", self.address)),
            Err(_) => Err(format!(
                "Redis at {} did not answer within {} ms",
                self.address,
                PROBE_DEADLINE.as_millis()
            )),
        }
    }

    /// Runs one request as a script call on its own task (at most [`MAX_IN_FLIGHT`] at once).
    fn call(&self, mut connection: ConnectionManager, request: LinkRequest) {
        let Ok(permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
            self.metrics.queue_refused.increment(1);
            drop_request(request);
            return;
        };
        let script = Arc::clone(&self.script);
        let status = Arc::clone(&self.status);
        let metrics = self.metrics;
        let address = self.address.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (key, limits, want, give_back, entry) = match request {
                LinkRequest::Lease {
                    entry,
                    limits,
                    want,
                } => (
                    entry.key.clone(),
                    limits,
                    want,
                    LeaseWant::default(),
                    Some(entry),
                ),
                LinkRequest::GiveBack {
                    key,
                    limits,
                    tokens,
                } => (key, limits, LeaseWant::default(), tokens, None),
            };
            let started = Instant::now();
            let result = tokio::time::timeout(
                CALL_DEADLINE,
                invocation(&script, &key, &limits, want, give_back)
                    .invoke_async::<(u64, u64)>(&mut connection),
            )
            .await;
            metrics
                .redis_latency
                .record(started.elapsed().as_secs_f64());
            match result {
                Ok(Ok((messages, bytes))) => {
                    if let Some(entry) = entry {
                        let back = entry.state().leased(messages, bytes);
                        metrics.leases.increment(1);
                        if let Some(tokens) = back {
                            // The budget was forgotten while the call ran: its tokens go back now.
                            let _ =
                                invocation(&script, &key, &limits, LeaseWant::default(), tokens)
                                    .invoke_async::<(u64, u64)>(&mut connection)
                                    .await;
                        }
                    }
                }
                Ok(Err(e)) => {
                    if let Some(entry) = entry {
                        entry.state().lease_failed();
                    }
                    status.fail(format!("Redis at {address} failed: {e}"), metrics);
                }
                Err(_) => {
                    if let Some(entry) = entry {
                        entry.state().lease_failed();
                    }
                    status.slow(
                        format!(
                            "Redis at {address} took over {} ms to answer",
                            CALL_DEADLINE.as_millis()
                        ),
                        metrics,
                    );
                }
            }
        });
    }
}

/// A request that will not be sent: a lease call is marked done (the IP may ask again later);
/// tokens to give back stay leased until their keys expire (conservative: the budget only shrinks).
pub(crate) fn drop_request(request: LinkRequest) {
    if let LinkRequest::Lease { entry, .. } = request {
        entry.state().lease_failed();
    }
}
