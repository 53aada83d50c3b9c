//! The agent as the transports see it: hand in a [`Frame`], get a [`Verdict`] (awaited, or
//! delivered to a queue), push a configuration. Owns the actor system's top (the router) and the
//! shared state the transports read directly (registry, running policy).

use std::sync::Arc;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef, MessagingErr};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::actors::connection::{ConnMsg, ConnectionContext};
use crate::actors::detector::{DetectorPool, DETECTOR_QUEUE_CAPACITY};
use crate::actors::router::{Registry, Router, RouterArgs, RouterMsg};
use crate::actors::upgrades::UpgradeRequests;
use crate::actors::{ReplyTarget, Responder};
use crate::clock;
use crate::compiler::{CompileLimits, Compiler};
use crate::limits::ReassemblyBudget;
use crate::model::{Frame, ReasonCode, Verdict};
use crate::options::ConfigError;
use crate::policy::{ConfigureOutcome, Policy, PolicyError, SharedPolicy};
use crate::routes::{PolicyDocument, PolicySet};
use crate::shared_limits::{IpLimiter, SharedLimitSettings};
use crate::telemetry::{ConfigResult, Telemetry};

/// A policy a configure push asks for: `{"policy-file": PATH}` or `{"policy": {...}}`.
#[derive(Debug)]
enum PolicySource {
    /// A policy file on the agent's host.
    File(std::path::PathBuf),
    /// The policy itself, shaped like a JSON policy file.
    Inline(Value),
}

impl PolicySource {
    /// The policy a push names, `None` for a push of plain options. Either key must come alone.
    fn of_push(config: &Value) -> Result<Option<PolicySource>, ConfigError> {
        let Value::Object(object) = config else {
            return Ok(None);
        };
        let key = match (object.get("policy-file"), object.get("policy")) {
            (None, None) => return Ok(None),
            (Some(_), None) => "policy-file",
            (None, Some(_)) => "policy",
            (Some(_), Some(_)) => {
                return Err(ConfigError::InvalidValue {
                    key: "policy-file".into(),
                    message: "push `policy-file` or `policy`, not both".into(),
                })
            }
        };
        if object.len() > 1 {
            return Err(ConfigError::InvalidValue {
                key: key.into(),
                message: format!(
                    "`{key}` must be pushed alone; set other options in the policy's `default`"
                ),
            });
        }
        match (key, &object[key]) {
            ("policy-file", Value::String(path)) => {
                Ok(Some(PolicySource::File(std::path::PathBuf::from(path))))
            }
            ("policy", value @ Value::Object(_)) => Ok(Some(PolicySource::Inline(value.clone()))),
            ("policy-file", _) => Err(ConfigError::InvalidValue {
                key: key.into(),
                message: "expected the path of a policy file".into(),
            }),
            _ => Err(ConfigError::InvalidValue {
                key: key.into(),
                message: "expected an object with `default` and `route`".into(),
            }),
        }
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
    /// The policy file the start-up set came from (`--policy-file`), reloaded on SIGHUP.
    pub policy_file: Option<std::path::PathBuf>,
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
            policy_file: None,
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
    /// The policy file SIGHUP reloads: `--policy-file`, or the last one a push named.
    policy_file: std::sync::Mutex<Option<std::path::PathBuf>>,
    ip_limiter: Arc<IpLimiter>,
    /// Client IPs and route ids of upgrade requests, for WebSockets whose frames carry none.
    upgrades: Arc<UpgradeRequests>,
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
        Agent::start_with_set(PolicySet::single(policy), settings).await
    }

    /// Starts the router with a set of per-route policies (a policy file) and the given resource
    /// settings.
    pub async fn start_with_set(
        set: PolicySet,
        settings: AgentSettings,
    ) -> Result<(Agent, JoinHandle<()>), StartError> {
        let AgentSettings {
            workers,
            max_buffered_bytes,
            hibernate_after,
            compile_limits,
            policy_file,
            ip_limiter,
        } = settings;
        let ip_limiter = match ip_limiter {
            Some(limiter) => limiter,
            None => IpLimiter::start(&SharedLimitSettings::default())
                .map_err(|e| StartError(e.to_string()))?,
        };
        let compiler = Compiler::start(compile_limits)
            .map_err(|e| StartError(format!("cannot start the configuration compiler: {e}")))?;
        let policy = Arc::new(SharedPolicy::with_set(set));
        let detectors = Arc::new(DetectorPool::new(workers, DETECTOR_QUEUE_CAPACITY));
        let registry = Arc::new(Registry::default());
        let upgrades = Arc::new(UpgradeRequests::default());
        let context = Arc::new(ConnectionContext {
            policy: Arc::clone(&policy),
            detectors: Arc::clone(&detectors),
            budget: Arc::new(ReassemblyBudget::new(max_buffered_bytes)),
            ip_limiter: Arc::clone(&ip_limiter),
            upgrades: Arc::clone(&upgrades),
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
                    policy_file: std::sync::Mutex::new(policy_file),
                    ip_limiter,
                    upgrades,
                    configuring: tokio::sync::Mutex::new(()),
                }),
            },
            handle,
        ))
    }

    /// The per-client-IP limiter (for health).
    pub fn ip_limiter(&self) -> &IpLimiter {
        &self.inner.ip_limiter
    }

    /// Remembers the client IP and route id the proxy named in a RequestHeaders event, for the
    /// frames of the WebSocket `correlation_id` if that request was its upgrade (their events may
    /// carry neither: gRPC v2's never do). Call it before answering the event. Bounded by
    /// `--max-connections`.
    pub fn learn_upgrade(&self, correlation_id: &str, client_ip: &str, route_id: Option<&str>) {
        let max = self
            .inner
            .policy
            .load_set()
            .default_policy()
            .options
            .max_connections;
        self.inner.upgrades.learn(
            correlation_id,
            client_ip,
            route_id,
            usize::try_from(max).unwrap_or(usize::MAX),
            clock::now_nanos(),
        );
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

    /// The registry of tracked connections (read-only use: only the router adds and removes).
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// WebSocket connections currently tracked.
    pub fn tracked_connections(&self) -> usize {
        self.inner.registry.len()
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
            .unwrap_or_else(|_| Verdict::failure(fail_open, ReasonCode::InspectionLost))
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
        if let Some(source) = PolicySource::of_push(config)? {
            return self.apply_policy(source, false).await;
        }
        let Some(request) = self.inner.policy.prepare(config)? else {
            return Ok(ConfigureOutcome::Unchanged);
        };
        let set = self
            .inner
            .compiler
            .run(move |limits| PolicySet::compile(request.base, request.document, limits))
            .await?;
        Ok(self.inner.policy.install(set))
    }

    /// Reads, checks and compiles a policy (a file, or an inline object) on the compiler thread,
    /// on top of the running base options, then swaps it in whole. Any error keeps the running
    /// set. `detailed`: schema file errors say what is wrong (the operator's own file on SIGHUP;
    /// not for a path a peer pushed).
    async fn apply_policy(
        &self,
        source: PolicySource,
        detailed: bool,
    ) -> Result<ConfigureOutcome, PolicyError> {
        let base = self.inner.policy.running_base();
        let path = match &source {
            PolicySource::File(path) => Some(path.clone()),
            PolicySource::Inline(_) => None,
        };
        let set = self
            .inner
            .compiler
            .run(move |limits| {
                let limits = if detailed {
                    limits.for_startup()
                } else {
                    *limits
                };
                match source {
                    PolicySource::File(path) => crate::routes::load_file(&path, base, &limits),
                    PolicySource::Inline(value) => {
                        let document =
                            PolicyDocument::from_json(&value, "configure `policy`", None)?;
                        crate::routes::compile_document(document, base, &limits)
                    }
                }
            })
            .await?;
        let outcome = self.inner.policy.install(set);
        if let Some(path) = path {
            *self
                .inner
                .policy_file
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(path);
        }
        Ok(outcome)
    }

    /// Reloads the policy file (SIGHUP): `--policy-file`, or the last file a push named. Checked
    /// completely on the compiler thread and swapped in whole; on any error the running policies
    /// stay, and the error is logged and counted (`ws_agent_config_reloads_total{result="rejected"}`).
    pub async fn reload_policy_file(&self) -> Result<ConfigureOutcome, PolicyError> {
        let path = self
            .inner
            .policy_file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(path) = path else {
            tracing::warn!("SIGHUP: no policy file to reload (--policy-file is not set)");
            return Ok(ConfigureOutcome::Unchanged);
        };
        let result = {
            let _serialized = self.inner.configuring.lock().await;
            self.apply_policy(PolicySource::File(path), true).await
        };
        Self::record(&result);
        result
    }

    fn record(result: &Result<ConfigureOutcome, PolicyError>) {
        match result {
            Ok(ConfigureOutcome::Applied) => {
                Telemetry::get().record_configure(ConfigResult::Applied);
                tracing::info!("configuration applied");
            }
            Ok(ConfigureOutcome::Unchanged) => {
                Telemetry::get().record_configure(ConfigResult::Unchanged)
            }
            Err(error) => Self::record_rejection(error),
        }
    }

    fn record_rejection(error: &PolicyError) {
        Telemetry::get().record_configure(ConfigResult::Rejected);
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

#[cfg(test)]
mod tests {
    //! The actor system in process, in paused (virtual) time: idle rules without waiting for them.
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use bytes::Bytes;
    use tokio::sync::mpsc;

    use super::*;
    use crate::model::{Direction, Opcode};
    use crate::options::PolicyOptions;

    fn frame(id: &str, payload: &'static str) -> Frame {
        Frame {
            correlation_id: Arc::from(id),
            direction: Direction::ClientToServer,
            opcode: Opcode::Text,
            fin: true,
            payload: Bytes::from_static(payload.as_bytes()),
            route_id: None,
            client_ip: None,
        }
    }

    async fn start(options: PolicyOptions) -> Agent {
        let settings = AgentSettings {
            hibernate_after: Duration::from_secs(5),
            ..AgentSettings::default()
        };
        let (agent, _router) = Agent::start_with(Policy::compile(options).unwrap(), settings)
            .await
            .unwrap();
        agent
    }

    /// Lets virtual time run until `done` holds (at most `limit` of it).
    async fn advance_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
        let step = Duration::from_millis(100);
        let mut waited = Duration::ZERO;
        while !done() {
            if waited >= limit {
                return false;
            }
            tokio::time::sleep(step).await;
            waited += step;
        }
        true
    }

    fn awake(agent: &Agent, id: &str) -> Option<bool> {
        agent.registry().get(id).map(|entry| entry.actor.is_some())
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_hibernates_and_keeps_deciding_after() {
        let agent = start(PolicyOptions::default()).await;
        assert!(agent.decide(frame("c1", "hello")).await.is_allow());
        assert_eq!(awake(&agent, "c1"), Some(true));
        assert!(
            advance_until(Duration::from_secs(10), || awake(&agent, "c1")
                == Some(false))
            .await,
            "not hibernated after 10 s idle (--hibernate-after 5)"
        );
        // Woken by its next frame, with the same tracked state.
        let verdict = agent.decide(frame("c1", "<script>alert(1)</script>")).await;
        assert!(!verdict.is_allow());
        assert_eq!(awake(&agent, "c1"), Some(true));
        assert_eq!(
            agent.registry().get("c1").unwrap().shared.frames[0].load(Ordering::Relaxed),
            2
        );
        agent.stop();
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_evicted_after_the_idle_timeout() {
        let options = PolicyOptions {
            idle_timeout: 60,
            ..PolicyOptions::default()
        };
        let agent = start(options).await;
        assert!(agent.decide(frame("idle", "hello")).await.is_allow());
        // Virtual time: 50 s pass at once (the connection hibernates meanwhile).
        tokio::time::sleep(Duration::from_secs(50)).await;
        assert_eq!(awake(&agent, "idle"), Some(false));
        assert!(
            agent.registry().get("idle").is_some(),
            "evicted before the idle timeout"
        );
        assert!(
            advance_until(Duration::from_secs(30), || agent
                .registry()
                .get("idle")
                .is_none())
            .await,
            "still tracked 80 s after its last frame (--idle-timeout 60)"
        );
        agent.stop();
    }

    #[tokio::test(start_paused = true)]
    async fn every_frame_handed_in_is_answered_exactly_once() {
        let agent = start(PolicyOptions::default()).await;
        let (queue, mut answers) = mpsc::unbounded_channel();
        let ids = ["a", "b", "c", "d"];
        for n in 0..200 {
            let payload = if n % 3 == 0 {
                "<script>x</script>"
            } else {
                "hi"
            };
            let target = ReplyTarget::Queue {
                queue: queue.clone(),
                permit: None,
            };
            agent
                .submit(frame(ids[n % ids.len()], payload), target)
                .await;
        }
        drop(queue);
        let mut count = 0;
        while let Some(answer) = answers.recv().await {
            assert!(ids.contains(&&*answer.correlation_id));
            count += 1;
        }
        assert_eq!(count, 200);
        agent.stop();
    }

    #[tokio::test(start_paused = true)]
    async fn a_frame_handed_in_after_stop_is_still_answered_once() {
        let agent = start(PolicyOptions::default()).await;
        agent.stop();
        assert!(advance_until(Duration::from_secs(5), || !agent.is_serving()).await);
        let (queue, mut answers) = mpsc::unbounded_channel();
        agent
            .submit(
                frame("late", "hello"),
                ReplyTarget::Queue {
                    queue,
                    permit: None,
                },
            )
            .await;
        let answer = answers.recv().await.expect("an answer");
        assert_eq!(answer.verdict.uninspected, Some(ReasonCode::InspectionLost));
        assert!(answers.recv().await.is_none(), "answered twice");
    }

    /// A crashed connection actor (the fault-injection hook panics it on one frame): that frame
    /// and the frames queued behind it are answered once each, by `--fail-open` (allow with
    /// `ws-fail-open`) or by 1011; the router drops the failed state, and the next frame of the
    /// same connection gets a fresh actor and a normal decision.
    #[cfg(feature = "fault-injection")]
    #[tokio::test(start_paused = true)]
    async fn a_crashed_connection_actor_answers_its_frames_once_and_the_next_frame_starts_fresh() {
        use crate::model::{Action, AuditTag, CLOSE_INTERNAL_ERROR, CLOSE_POLICY_VIOLATION};
        for fail_open in [true, false] {
            let agent = start(PolicyOptions {
                fail_open,
                ..PolicyOptions::default()
            })
            .await;
            let id = format!("crash-once-{fail_open}");
            assert!(agent.decide(frame(&id, "hello")).await.is_allow());
            let first_actor = agent.registry().get(id.as_str()).unwrap().actor.clone();
            let first_actor = first_actor.expect("awake").get_id();

            crate::fault_injection::crash_next_frame_of(&id);
            let (queue, mut answers) = mpsc::unbounded_channel();
            for payload in ["<script>alert(1)</script>", "queued 1", "queued 2"] {
                let target = ReplyTarget::Queue {
                    queue: queue.clone(),
                    permit: None,
                };
                agent.submit(frame(&id, payload), target).await;
            }
            drop(queue);
            let crashed = answers.recv().await.expect("the crashed frame's answer");
            assert_eq!(
                crashed.verdict.uninspected,
                Some(ReasonCode::InspectionLost)
            );
            if fail_open {
                assert!(crashed.verdict.is_allow());
                assert_eq!(crashed.verdict.tags, vec![AuditTag::FailOpen]);
            } else {
                assert!(matches!(
                    crashed.verdict.action,
                    Action::Close {
                        code: CLOSE_INTERNAL_ERROR,
                        ..
                    }
                ));
                assert_eq!(crashed.verdict.tags, vec![AuditTag::InspectionError]);
            }
            // The two frames behind it: each answered, once (by the dead actor's dropped mailbox
            // or by the fresh actor that took them).
            let mut rest = 0;
            while let Some(answer) = answers.recv().await {
                assert_eq!(&*answer.correlation_id, id);
                rest += 1;
            }
            assert_eq!(
                rest, 2,
                "the frames behind the crash were not answered once each"
            );
            // The router notices: the failed actor is no longer the connection's.
            assert!(
                advance_until(Duration::from_secs(5), || agent
                    .registry()
                    .get(id.as_str())
                    .and_then(|entry| entry.actor.as_ref().map(|a| a.get_id()))
                    != Some(first_actor))
                .await,
                "the router kept the crashed actor"
            );
            // The next frame: a fresh actor, a full decision.
            let verdict = agent.decide(frame(&id, "<script>alert(1)</script>")).await;
            assert!(matches!(
                verdict.action,
                Action::Close {
                    code: CLOSE_POLICY_VIOLATION,
                    ..
                }
            ));
            assert_eq!(verdict.uninspected, None);
            assert!(verdict.tags.contains(&AuditTag::Xss));
            let fresh = agent.registry().get(id.as_str()).unwrap().actor.clone();
            assert_ne!(fresh.expect("awake").get_id(), first_actor);
            agent.stop();
        }
    }

    /// The drain as `server::run` does it, over the real Unix socket and protocol v2: frames in
    /// flight when the drain begins are answered once each with full inspection, the open
    /// connection keeps being served, a new connection is refused, health says draining, and the
    /// drain ends idle once the proxy closes its connection.
    #[tokio::test]
    async fn a_drain_answers_frames_in_flight_once_and_refuses_new_connections() {
        use std::collections::HashMap;

        use base64::Engine as _;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::UnixStream;

        use crate::lifecycle::{DrainOutcome, Lifecycle};
        use crate::ops::health::{self, HealthState};
        use crate::transport::{uds, v2::message_type, TransportContext};

        const WAIT: Duration = Duration::from_secs(30);
        fn message(kind: u8, body: &serde_json::Value) -> Vec<u8> {
            let body = serde_json::to_vec(body).unwrap();
            let mut out = u32::try_from(body.len() + 1)
                .unwrap()
                .to_be_bytes()
                .to_vec();
            out.push(kind);
            out.extend_from_slice(&body);
            out
        }
        fn frame_event(id: &str, text: &str) -> Vec<u8> {
            let data = base64::engine::general_purpose::STANDARD.encode(text);
            message(
                message_type::WEBSOCKET_FRAME,
                &serde_json::json!({"correlation_id": id, "opcode": "text", "data": data,
                    "client_to_server": true, "frame_index": 0, "fin": true}),
            )
        }
        /// The next frame answer (health and metrics reports skipped): its id and verdict.
        async fn answer(stream: &mut UnixStream) -> Option<(String, serde_json::Value)> {
            loop {
                let length = stream.read_u32().await.ok()? as usize;
                let kind = stream.read_u8().await.ok()?;
                let mut body = vec![0; length.saturating_sub(1)];
                stream.read_exact(&mut body).await.ok()?;
                if kind == message_type::AGENT_RESPONSE {
                    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let id = json["audit"]["custom"]["correlation_id"]
                        .as_str()?
                        .to_string();
                    return Some((id, json));
                }
            }
        }
        let blocked = |answer: &serde_json::Value| {
            answer["websocket_decision"]["close"]["code"].as_u64() == Some(1008)
        };
        let failed_open = |answer: &serde_json::Value| {
            answer["audit"]["tags"]
                .as_array()
                .is_some_and(|tags| tags.iter().any(|t| t == "ws-fail-open"))
        };

        let agent = start(PolicyOptions::default()).await;
        let lifecycle = Lifecycle::new();
        let mut health = health::spawn_monitor(agent.clone(), Arc::clone(&lifecycle));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let context = TransportContext {
            agent: agent.clone(),
            lifecycle: Arc::clone(&lifecycle),
            health: health.clone(),
            agent_id: Arc::from("drain-test"),
            report_interval: Duration::from_secs(60),
            max_transport_connections: 16,
            max_grpc_streams: 16,
            read_timeout: Duration::from_secs(30),
        };
        let socket = uds::bind(&path, 0o600).await.unwrap();
        let accepting = tokio::spawn(uds::serve(socket, context));

        let mut proxy = UnixStream::connect(&path).await.unwrap();
        let hello = serde_json::json!({"supported_versions": [2], "proxy_id": "test",
            "proxy_version": "0", "supported_encodings": ["json"]});
        proxy
            .write_all(&message(message_type::HANDSHAKE_REQUEST, &hello))
            .await
            .unwrap();
        let length = proxy.read_u32().await.unwrap() as usize;
        assert_eq!(
            proxy.read_u8().await.unwrap(),
            message_type::HANDSHAKE_RESPONSE
        );
        proxy.read_exact(&mut vec![0; length - 1]).await.unwrap();

        // 60 frames in flight (every fifth an attack), then the drain begins.
        let mut burst = Vec::new();
        for n in 0..60 {
            let text = if n % 5 == 0 {
                "<script>alert(1)</script>"
            } else {
                "hello"
            };
            burst.extend(frame_event(&format!("in-flight-{n}"), text));
        }
        proxy.write_all(&burst).await.unwrap();
        lifecycle.start_drain();
        tokio::time::timeout(WAIT, accepting)
            .await
            .expect("the listener stops accepting")
            .unwrap();
        assert!(
            UnixStream::connect(&path).await.is_err(),
            "a new connection was accepted while draining"
        );
        tokio::time::timeout(WAIT, health.wait_for(|h| h.state == HealthState::Draining))
            .await
            .expect("health reports draining")
            .unwrap();

        // The open connection keeps full service: a frame sent after the drain began.
        proxy
            .write_all(&frame_event("after-drain", "<script>alert(1)</script>"))
            .await
            .unwrap();
        let mut answered: HashMap<String, serde_json::Value> = HashMap::new();
        while answered.len() < 61 {
            let (id, verdict) = tokio::time::timeout(WAIT, answer(&mut proxy))
                .await
                .expect("every frame answered in time")
                .expect("the connection stays open");
            assert!(
                answered.insert(id.clone(), verdict).is_none(),
                "{id} answered twice"
            );
        }
        for n in 0..60 {
            let verdict = &answered[&format!("in-flight-{n}")];
            assert!(!failed_open(verdict), "in-flight-{n}: {verdict}");
            assert_eq!(blocked(verdict), n % 5 == 0, "in-flight-{n}: {verdict}");
        }
        assert!(blocked(&answered["after-drain"]));

        // The proxy closes its connection: nothing more was sent, and the drain ends idle.
        proxy.shutdown().await.unwrap();
        assert_eq!(
            tokio::time::timeout(WAIT, answer(&mut proxy))
                .await
                .unwrap(),
            None,
            "an answer beyond one per frame"
        );
        drop(proxy);
        assert_eq!(lifecycle.wait_idle(WAIT).await, DrainOutcome::Idle);
        assert_eq!(lifecycle.open_connections(), 0);
        agent.stop();
    }
}
