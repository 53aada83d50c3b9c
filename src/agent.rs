//! The agent as the transports see it: hand in a [`Frame`], get a [`Verdict`] (awaited, or
//! delivered to a queue), push a configuration. Owns the actor system's top (the router) and the
//! shared state the transports read directly (registry, running policy).

use std::sync::Arc;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef, MessagingErr};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::actors::connection::{bucket_level, ConnMsg, ConnectionContext, ConnectionShared};
use crate::actors::detector::{DetectorPool, DETECTOR_QUEUE_CAPACITY};
use crate::actors::router::{Registry, Router, RouterArgs, RouterMsg};
use crate::actors::{ReplyTarget, Responder};
use crate::clock;
use crate::compiler::{CompileLimits, Compiler};
use crate::limits::ReassemblyBudget;
use crate::model::{Frame, Verdict};
use crate::policy::{ConfigureOutcome, Policy, PolicyError, SharedPolicy};
use crate::shared_limits::{IpLimiter, SharedLimitSettings};
use crate::telemetry::Telemetry;

/// One tracked WebSocket connection as an operator sees it (`/connections`).
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionView {
    /// The correlation id.
    pub correlation_id: String,
    /// The proxy's route id, if sent.
    pub route: Option<String>,
    /// The client's IP, if sent.
    pub client_ip: Option<String>,
    /// Seconds since the agent first saw it.
    pub age_secs: f64,
    /// Seconds since its last frame.
    pub idle_secs: f64,
    /// Frames per direction.
    pub frames: PerDirection,
    /// Payload bytes per direction.
    pub bytes: PerDirection,
    /// Message bucket level (tokens), when a message rate applies.
    pub message_bucket: Option<f64>,
    /// Byte bucket level, when a byte rate applies.
    pub byte_bucket: Option<f64>,
    /// Bytes held for unfinished messages.
    pub reassembly_bytes: u64,
    /// The last violation tag raised.
    pub last_detection: Option<&'static str>,
}

/// A figure per direction.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PerDirection {
    /// Client to server.
    pub client_to_server: u64,
    /// Server to client.
    pub server_to_client: u64,
}

impl ConnectionView {
    fn of(id: &str, shared: &ConnectionShared, now: u64) -> Self {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let secs = |nanos: u64| now.saturating_sub(nanos) as f64 / 1e9;
        ConnectionView {
            correlation_id: id.to_string(),
            route: shared.route_id.get().map(|r| r.to_string()),
            client_ip: shared.client_ip.get().map(|r| r.to_string()),
            age_secs: secs(load(&shared.created_nanos)),
            idle_secs: secs(load(&shared.last_seen_nanos)),
            frames: PerDirection {
                client_to_server: load(&shared.frames[0]),
                server_to_client: load(&shared.frames[1]),
            },
            bytes: PerDirection {
                client_to_server: load(&shared.bytes[0]),
                server_to_client: load(&shared.bytes[1]),
            },
            message_bucket: bucket_level(load(&shared.message_tokens)),
            byte_bucket: bucket_level(load(&shared.byte_tokens)),
            reassembly_bytes: load(&shared.reassembly_bytes),
            last_detection: shared.last_tag().map(|t| t.as_str()),
        }
    }

    fn total_frames(&self) -> u64 {
        self.frames.client_to_server + self.frames.server_to_client
    }
}

/// Default for `--max-buffered-bytes`.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 256 * 1024 * 1024;

/// Resource settings of the actor system (start-up options, not part of the policy).
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Detector actors.
    pub workers: usize,
    /// Bytes all connections may hold for unfinished messages.
    pub max_buffered_bytes: usize,
    /// Idle time after which a connection's actor hibernates.
    pub hibernate_after: std::time::Duration,
    /// Bounds for pushed configurations.
    pub compile_limits: CompileLimits,
    /// The per-client-IP limiter (`None`: one counting in this process, with default bounds).
    pub ip_limiter: Option<Arc<IpLimiter>>,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            workers: 2,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            hibernate_after: crate::actors::router::DEFAULT_HIBERNATE_AFTER,
            compile_limits: CompileLimits::default(),
            ip_limiter: None,
        }
    }
}

/// The actor system could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the actor system: {0}")]
pub struct StartError(String);

/// A cheap, cloneable handle to the running agent.
#[derive(Debug, Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    policy: Arc<SharedPolicy>,
    registry: Arc<Registry>,
    detectors: Arc<DetectorPool>,
    router: ActorRef<RouterMsg>,
    compiler: Compiler,
    ip_limiter: Arc<IpLimiter>,
    /// Serializes configure events so that the same push on every pooled connection compiles
    /// once (the others find it unchanged).
    configuring: tokio::sync::Mutex<()>,
}

impl Agent {
    /// Starts the router, which starts `workers` detector actors.
    pub async fn start(
        policy: Policy,
        workers: usize,
    ) -> Result<(Agent, JoinHandle<()>), StartError> {
        let settings = AgentSettings {
            workers,
            ..AgentSettings::default()
        };
        Agent::start_with(policy, settings).await
    }

    /// Starts the router with the given resource settings.
    pub async fn start_with(
        policy: Policy,
        settings: AgentSettings,
    ) -> Result<(Agent, JoinHandle<()>), StartError> {
        let AgentSettings {
            workers,
            max_buffered_bytes,
            hibernate_after,
            compile_limits,
            ip_limiter,
        } = settings;
        let ip_limiter = match ip_limiter {
            Some(limiter) => limiter,
            None => IpLimiter::start(&SharedLimitSettings::default())
                .map_err(|e| StartError(e.to_string()))?,
        };
        let compiler = Compiler::start(compile_limits)
            .map_err(|e| StartError(format!("cannot start the configuration compiler: {e}")))?;
        let policy = Arc::new(SharedPolicy::new(policy));
        let detectors = Arc::new(DetectorPool::new(workers, DETECTOR_QUEUE_CAPACITY));
        let registry = Arc::new(Registry::default());
        let context = Arc::new(ConnectionContext {
            policy: Arc::clone(&policy),
            detectors: Arc::clone(&detectors),
            budget: Arc::new(ReassemblyBudget::new(max_buffered_bytes)),
            ip_limiter: Arc::clone(&ip_limiter),
        });
        let (router, handle) = Router::spawn(
            None,
            Router,
            RouterArgs {
                registry: Arc::clone(&registry),
                context,
                hibernate_after,
            },
        )
        .await
        .map_err(|e| StartError(e.to_string()))?;
        Ok((
            Agent {
                inner: Arc::new(Inner {
                    policy,
                    registry,
                    detectors,
                    router,
                    compiler,
                    ip_limiter,
                    configuring: tokio::sync::Mutex::new(()),
                }),
            },
            handle,
        ))
    }

    /// The running policy.
    pub fn policy(&self) -> &SharedPolicy {
        &self.inner.policy
    }

    /// The `Arc<str>` already used for `correlation_id` if the connection is tracked, so that most
    /// frames do not allocate one.
    pub fn intern(&self, correlation_id: &str) -> Arc<str> {
        match self.inner.registry.get(correlation_id) {
            Some(entry) => Arc::clone(entry.key()),
            None => Arc::from(correlation_id),
        }
    }

    /// The tracked connections, most active (most frames) first, at most `limit`.
    pub fn connections(&self, limit: usize) -> Vec<ConnectionView> {
        let now = clock::now_nanos();
        let mut views: Vec<ConnectionView> = self
            .inner
            .registry
            .iter()
            .map(|entry| ConnectionView::of(entry.key(), &entry.shared, now))
            .collect();
        let by_activity =
            |a: &ConnectionView, b: &ConnectionView| b.total_frames().cmp(&a.total_frames());
        if limit < views.len() {
            if limit > 0 {
                views.select_nth_unstable_by(limit - 1, by_activity);
            }
            views.truncate(limit);
        }
        views.sort_by(by_activity);
        views
    }

    /// WebSocket connections currently tracked.
    pub fn tracked_connections(&self) -> usize {
        self.inner.registry.len()
    }

    /// The per-client-IP limiter (for health).
    pub fn ip_limiter(&self) -> &IpLimiter {
        &self.inner.ip_limiter
    }

    /// The detector pool (for load figures).
    pub fn detectors(&self) -> &DetectorPool {
        &self.inner.detectors
    }

    /// Hands `frame` in; its verdict goes to `target`. Never fails: if the frame cannot be
    /// inspected, its responder answers by `--fail-open`.
    pub async fn submit(&self, frame: Frame, target: ReplyTarget) {
        let responder = Responder::new(
            &frame,
            target,
            self.inner.policy.fail_open(),
            clock::now_nanos(),
        );
        let id = Arc::clone(&frame.correlation_id);
        let mut message = ConnMsg::Frame {
            frame,
            reply: responder,
        };
        // A hibernated connection has no actor, and one that is stopping (evicted, closed,
        // hibernating) refuses new messages: then the router starts one.
        let mut refused = None;
        for _ in 0..3 {
            let awake = match self.inner.registry.get(&id) {
                Some(entry) => entry.actor.clone().filter(|a| Some(a.get_id()) != refused),
                None => None,
            };
            let actor = match awake {
                Some(actor) => actor,
                None => match self.open(&id, refused).await {
                    Some(actor) => actor,
                    None => return,
                },
            };
            match actor.send_message(message) {
                Ok(()) => return,
                Err(MessagingErr::SendErr(returned)) => {
                    message = returned;
                    refused = Some(actor.get_id());
                }
                Err(_) => return,
            }
        }
        tracing::error!(
            answer = crate::model::failure_answer(self.inner.policy.fail_open()),
            "connection actor kept refusing a frame; answered without inspection"
        );
    }

    /// Hands `frame` in and waits for its verdict.
    pub async fn decide(&self, frame: Frame) -> Verdict {
        let fail_open = self.inner.policy.fail_open();
        let (sender, receiver) = oneshot::channel();
        self.submit(frame, ReplyTarget::Oneshot(sender)).await;
        receiver
            .await
            .unwrap_or_else(|_| Verdict::failure(fail_open, "inspection-lost"))
    }

    async fn open(
        &self,
        id: &Arc<str>,
        refused: Option<ractor::ActorId>,
    ) -> Option<ActorRef<ConnMsg>> {
        let id = Arc::clone(id);
        match self
            .inner
            .router
            .call(|reply| RouterMsg::Open { id, refused, reply }, None)
            .await
        {
            Ok(CallResult::Success(actor)) => actor,
            _ => None,
        }
    }

    /// Largest configuration a proxy may push, in bytes of JSON.
    pub fn max_config_bytes(&self) -> usize {
        self.inner.compiler.limits().max_config_bytes
    }

    /// Applies a configuration pushed by a proxy as JSON text: refused unread when it is over
    /// `--max-config-bytes`, otherwise parsed and applied as [`Agent::configure`] does.
    pub async fn configure_json(&self, json: &str) -> Result<ConfigureOutcome, PolicyError> {
        let result = match self.parse_config(json) {
            Ok(config) => self.apply(&config).await,
            Err(error) => Err(error),
        };
        Self::record(&result);
        result
    }

    /// Rejects (records and logs) a configure message whose whole body is over
    /// `--max-config-bytes` (plus room for its envelope), without parsing it.
    pub fn reject_oversized(&self, size: usize) -> PolicyError {
        let error = PolicyError::TooLarge {
            size,
            limit: self.max_config_bytes(),
        };
        Self::record_rejection(&error);
        error
    }

    fn parse_config(&self, json: &str) -> Result<Value, PolicyError> {
        let limit = self.max_config_bytes();
        if json.len() > limit {
            return Err(PolicyError::TooLarge {
                size: json.len(),
                limit,
            });
        }
        serde_json::from_str(json).map_err(|e| PolicyError::Malformed(e.to_string()))
    }

    /// Applies a configuration pushed by a proxy (validated completely, compiled on the compiler
    /// thread within `--config-timeout`, then swapped in). The calling task waits; frames on other
    /// tasks do not. A rejection keeps the running policy.
    pub async fn configure(&self, config: &Value) -> Result<ConfigureOutcome, PolicyError> {
        let result = self.apply(config).await;
        Self::record(&result);
        result
    }

    async fn apply(&self, config: &Value) -> Result<ConfigureOutcome, PolicyError> {
        let _serialized = self.inner.configuring.lock().await;
        let Some(options) = self.inner.policy.prepare(config)? else {
            return Ok(ConfigureOutcome::Unchanged);
        };
        let policy = self.inner.compiler.compile(options).await?;
        Ok(self.inner.policy.install(policy))
    }

    fn record(result: &Result<ConfigureOutcome, PolicyError>) {
        match result {
            Ok(ConfigureOutcome::Applied) => {
                Telemetry::get().record_configure(Ok(true));
                tracing::info!("configuration applied");
            }
            Ok(ConfigureOutcome::Unchanged) => Telemetry::get().record_configure(Ok(false)),
            Err(error) => Self::record_rejection(error),
        }
    }

    fn record_rejection(error: &PolicyError) {
        Telemetry::get().record_configure(Err(()));
        let error = error.to_string();
        tracing::warn!(
            error = %crate::util::for_log(&error),
            "configuration rejected; the running configuration stays"
        );
    }

    /// Applies the configuration a handshake carries (JSON text); `null` and `{}` mean the proxy
    /// has none to push (Sentinel sends `null`, gRPC clients `"{}"`), so the running
    /// configuration stays.
    pub async fn configure_from_handshake(
        &self,
        json: &str,
    ) -> Result<ConfigureOutcome, PolicyError> {
        let config = match self.parse_config(json) {
            Ok(config) => config,
            Err(error) => {
                Self::record_rejection(&error);
                return Err(error);
            }
        };
        match &config {
            Value::Object(map) if map.is_empty() => Ok(ConfigureOutcome::Unchanged),
            Value::Null => Ok(ConfigureOutcome::Unchanged),
            _ => self.configure(&config).await,
        }
    }

    /// True while the actor system runs.
    pub fn is_serving(&self) -> bool {
        matches!(self.inner.router.get_status(), ractor::ActorStatus::Running)
    }

    /// Stops the actor system (after the transports are done).
    pub fn stop(&self) {
        self.inner.router.stop(Some("agent stopping".into()));
    }
}
