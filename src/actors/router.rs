//! The router: owns the registry `correlation_id -> connection actor` (transports read it
//! directly; only the router adds and removes), creates connection actors on first sight, asks
//! connections idle for a while ([`DEFAULT_HIBERNATE_AFTER`]) to hibernate (their actor stops; the next frame starts
//! a new one from the parked state), evicts idle ones and the least recently seen at capacity (and
//! sweeps idle client IPs learned from upgrade requests with them), and supervises every
//! connection and detector actor (a failed detector is replaced; a failed
//! connection's state is dropped and starts fresh on its next frame).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::connection::{
    ConnMsg, ConnectionActor, ConnectionArgs, ConnectionContext, ConnectionShared,
};
use super::detector::Detector;
use crate::clock;
use crate::policy::PolicyCache;
use crate::telemetry::throttle::LogThrottle;
use crate::telemetry::{EvictionReason, Telemetry};

/// By default, a connection with no frame for this long gives up its actor (it hibernates).
pub const DEFAULT_HIBERNATE_AFTER: Duration = Duration::from_secs(5);

/// A tracked WebSocket connection.
#[derive(Debug, Clone)]
pub struct ConnectionEntry {
    /// Its actor, or `None` while the connection hibernates.
    pub actor: Option<ActorRef<ConnMsg>>,
    /// Figures readable without messaging the actor.
    pub shared: Arc<ConnectionShared>,
}

/// `correlation_id -> connection`.
pub type Registry = DashMap<Arc<str>, ConnectionEntry>;

/// Messages to the router.
#[derive(Debug)]
pub enum RouterMsg {
    /// Return the connection actor for an id, creating it if needed.
    Open {
        /// The correlation id.
        id: Arc<str>,
        /// An actor of this id that refused a frame (it is stopping): start a new one.
        refused: Option<ActorId>,
        /// The actor, or `None` if it could not be started.
        reply: RpcReplyPort<Option<ActorRef<ConnMsg>>>,
    },
    /// Evict connections idle for longer than the idle timeout.
    Sweep,
    /// Start a detector in a pool slot again (after a restart backoff).
    RestartDetector(usize),
}

/// Detector restarts allowed within one second before further ones are delayed.
const RESTART_BURST: usize = 8;
/// Longest delay before a detector is restarted.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(1);

/// Log throttles for lines a peer can cause (a message that makes a detector fail, repeated).
static FAILURE_LINES: LogThrottle = LogThrottle::new();
static RESTART_LINES: LogThrottle = LogThrottle::new();

/// Start-up arguments.
#[derive(Debug)]
pub struct RouterArgs {
    /// The registry transports read.
    pub registry: Arc<Registry>,
    /// Policy and detector pool shared with connection actors.
    pub context: Arc<ConnectionContext>,
    /// Idle time after which a connection's actor hibernates.
    pub hibernate_after: Duration,
}

/// The router actor.
#[derive(Debug, Default)]
pub struct Router;

/// The router's state.
#[derive(Debug)]
pub struct RouterState {
    registry: Arc<Registry>,
    context: Arc<ConnectionContext>,
    policy: PolicyCache,
    /// Which correlation id each live connection actor serves.
    connection_ids: HashMap<ActorId, Arc<str>>,
    /// Connection actors the router is evicting (their termination is already counted).
    evicting: HashMap<ActorId, EvictionReason>,
    /// Connection actors asked to hibernate, and when the router last saw them idle.
    hibernating: HashMap<ActorId, u64>,
    hibernate_after: Duration,
    /// Which pool slot each detector actor fills.
    detector_slots: HashMap<ActorId, usize>,
    /// When detectors were restarted in the last second (clock nanos), to bound a restart storm.
    recent_restarts: std::collections::VecDeque<u64>,
    stopping: bool,
}

impl Actor for Router {
    type Msg = RouterMsg;
    type State = RouterState;
    type Arguments = RouterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = RouterState {
            policy: PolicyCache::new(&args.context.policy),
            registry: args.registry,
            context: args.context,
            connection_ids: HashMap::new(),
            evicting: HashMap::new(),
            hibernating: HashMap::new(),
            hibernate_after: args.hibernate_after,
            detector_slots: HashMap::new(),
            recent_restarts: std::collections::VecDeque::new(),
            stopping: false,
        };
        for index in 0..state.context.detectors.slots().len() {
            state.spawn_detector(&myself, index).await?;
        }
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let idle = state.policy.get(&state.context.policy).options.idle_timeout;
        myself.send_interval(sweep_period(idle), || RouterMsg::Sweep);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RouterMsg::Open { id, refused, reply } => {
                let actor = state.open(&myself, id, refused).await;
                let _ = reply.send(actor);
            }
            RouterMsg::Sweep => {
                state.sweep_idle();
                state.hibernate_idle();
            }
            RouterMsg::RestartDetector(index) => {
                if !state.stopping {
                    if let Err(error) = state.spawn_detector(&myself, index).await {
                        tracing::error!(%error, "cannot restart a detector");
                    }
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.on_child_exit(&myself, cell.get_id(), false).await;
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                if let Some(unlogged) = FAILURE_LINES.event() {
                    tracing::error!(
                        actor = %cell.get_id(),
                        error = %crate::util::for_log(&error.to_string()),
                        failed_since_last_line = unlogged + 1,
                        "actor failed"
                    );
                }
                state.on_child_exit(&myself, cell.get_id(), true).await;
            }
            _ => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.stopping = true;
        myself.stop_children(Some("agent stopping".into()));
        state.registry.clear();
        Telemetry::get().set_tracked_connections(0);
        Ok(())
    }
}

/// How often idle connections are looked for: a quarter of the timeout, within 250 ms .. 1 s.
fn sweep_period(idle_timeout_secs: u64) -> Duration {
    Duration::from_millis((idle_timeout_secs.saturating_mul(250)).clamp(250, 1_000))
}

impl RouterState {
    async fn spawn_detector(
        &mut self,
        myself: &ActorRef<RouterMsg>,
        index: usize,
    ) -> Result<(), ActorProcessingErr> {
        let slot = Arc::clone(&self.context.detectors.slots()[index]);
        let (actor, _) =
            Detector::spawn_linked(None, Detector, Arc::clone(&slot), myself.get_cell()).await?;
        self.detector_slots.insert(actor.get_id(), index);
        slot.install(actor);
        Ok(())
    }

    async fn open(
        &mut self,
        myself: &ActorRef<RouterMsg>,
        id: Arc<str>,
        refused: Option<ActorId>,
    ) -> Option<ActorRef<ConnMsg>> {
        // Never hold a registry guard across an await: transports read the same shards.
        let existing = self
            .registry
            .get(&id)
            .map(|entry| (entry.actor.clone(), Arc::clone(&entry.shared)));
        let shared = match existing {
            Some((Some(actor), _)) if Some(actor.get_id()) != refused => return Some(actor),
            // Hibernated, or its actor is stopping: a new actor takes over the same state.
            Some((_, shared)) => shared,
            None => {
                if self.stopping {
                    return None;
                }
                let max = usize::try_from(
                    self.policy
                        .get(&self.context.policy)
                        .options
                        .max_connections,
                )
                .unwrap_or(usize::MAX);
                if self.registry.len() >= max {
                    self.evict_least_recent(max);
                }
                Arc::new(ConnectionShared::new(clock::now_nanos()))
            }
        };
        if self.stopping {
            return None;
        }
        let args = ConnectionArgs {
            shared: Arc::clone(&shared),
            context: Arc::clone(&self.context),
        };
        let actor =
            match ConnectionActor::spawn_linked(None, ConnectionActor, args, myself.get_cell())
                .await
            {
                Ok((actor, _)) => actor,
                Err(error) => {
                    tracing::error!(%error, "cannot start a connection actor");
                    return None;
                }
            };
        self.connection_ids.insert(actor.get_id(), Arc::clone(&id));
        let entry = ConnectionEntry {
            actor: Some(actor.clone()),
            shared,
        };
        if let Some(previous) = self.registry.insert(id, entry) {
            if let Some(old) = previous.actor {
                // The old actor is stopping; its exit must not touch the new entry.
                self.hibernating.remove(&old.get_id());
            }
        }
        Telemetry::get().set_tracked_connections(self.registry.len());
        Telemetry::get().set_connection_actors(self.connection_ids.len());
        Some(actor)
    }

    /// Asks every awake connection with no frame for `hibernate_after` to hibernate.
    fn hibernate_idle(&mut self) {
        let now = clock::now_nanos();
        let after = u64::try_from(self.hibernate_after.as_nanos()).unwrap_or(u64::MAX);
        let mut asked = 0usize;
        for entry in self.registry.iter() {
            let Some(actor) = &entry.actor else { continue };
            let seen = entry.shared.last_seen_nanos.load(Ordering::Relaxed);
            if now.saturating_sub(seen) <= after || self.hibernating.contains_key(&actor.get_id()) {
                continue;
            }
            if actor
                .send_message(ConnMsg::Hibernate { idle_since: seen })
                .is_ok()
            {
                self.hibernating.insert(actor.get_id(), seen);
                asked += 1;
            }
        }
        if asked > 0 {
            tracing::debug!(asked, "idle connections asked to hibernate");
        }
    }

    /// Evicts the least recently seen connections so that one more fits under `max`, plus 1% of
    /// `max` so that a stream of new ids does not pay a full scan each.
    fn evict_least_recent(&mut self, max: usize) {
        let excess = self.registry.len() + 1 - max.min(self.registry.len() + 1);
        let count = (excess + max / 100).max(1);
        let mut by_age: Vec<(u64, Arc<str>)> = self
            .registry
            .iter()
            .map(|e| {
                (
                    e.shared.last_seen_nanos.load(Ordering::Relaxed),
                    Arc::clone(e.key()),
                )
            })
            .collect();
        let count = count.min(by_age.len());
        if count == 0 {
            return;
        }
        if count < by_age.len() {
            by_age.select_nth_unstable_by_key(count - 1, |(seen, _)| *seen);
        }
        for (_, id) in by_age.into_iter().take(count) {
            self.evict(&id, EvictionReason::Capacity);
        }
    }

    fn sweep_idle(&mut self) {
        let timeout = clock::secs(self.policy.get(&self.context.policy).options.idle_timeout);
        let now = clock::now_nanos();
        let idle: Vec<Arc<str>> = self
            .registry
            .iter()
            .filter(|e| {
                now.saturating_sub(e.shared.last_seen_nanos.load(Ordering::Relaxed)) > timeout
            })
            .map(|e| Arc::clone(e.key()))
            .collect();
        for id in &idle {
            self.evict(id, EvictionReason::Idle);
        }
        self.context.upgrades.sweep(now, timeout);
        if self.registry.capacity() > 4096 && self.registry.len() < self.registry.capacity() / 8 {
            self.registry.shrink_to_fit();
        }
        if !idle.is_empty() {
            tracing::debug!(evicted = idle.len(), "idle connections evicted");
        }
    }

    /// Removes `id` from the registry and lets its actor finish what it holds, then stop.
    fn evict(&mut self, id: &str, reason: EvictionReason) {
        if let Some((_, entry)) = self.registry.remove(id) {
            Telemetry::get().record_evictions(reason, 1);
            if let Some(actor) = entry.actor {
                self.evicting.insert(actor.get_id(), reason);
                if actor.drain().is_err() {
                    actor.stop(None);
                }
            }
        }
        Telemetry::get().set_tracked_connections(self.registry.len());
    }

    async fn on_child_exit(&mut self, myself: &ActorRef<RouterMsg>, actor: ActorId, failed: bool) {
        if let Some(index) = self.detector_slots.remove(&actor) {
            if self.stopping {
                return;
            }
            Telemetry::get().record_detector_restart();
            let delay = self.restart_delay();
            if let Some(unlogged) = RESTART_LINES.event() {
                tracing::warn!(
                    slot = index,
                    delay_ms = delay.as_millis() as u64,
                    restarted_since_last_line = unlogged + 1,
                    "restarting detector"
                );
            }
            if delay.is_zero() {
                if let Err(error) = self.spawn_detector(myself, index).await {
                    tracing::error!(%error, "cannot restart a detector");
                }
            } else {
                myself.send_after(delay, move || RouterMsg::RestartDetector(index));
            }
            return;
        }
        let Some(id) = self.connection_ids.remove(&actor) else {
            return;
        };
        Telemetry::get().set_connection_actors(self.connection_ids.len());
        self.shrink_maps();
        if self.evicting.remove(&actor).is_some() {
            return;
        }
        if self.hibernating.remove(&actor).is_some() && !failed {
            // Keep the entry; only its actor is gone.
            if let Some(mut entry) = self.registry.get_mut(&id) {
                if entry.actor.as_ref().is_some_and(|a| a.get_id() == actor) {
                    entry.actor = None;
                }
            }
            return;
        }
        let reason = if failed {
            EvictionReason::Failed
        } else {
            EvictionReason::Closed
        };
        let removed = self.registry.remove_if(&id, |_, entry| {
            entry.actor.as_ref().is_some_and(|a| a.get_id() == actor)
        });
        if removed.is_some() {
            Telemetry::get().record_evictions(reason, 1);
            Telemetry::get().set_tracked_connections(self.registry.len());
        }
    }

    /// No delay for the first [`RESTART_BURST`] restarts within a second, then a delay growing
    /// with the storm (100 ms per restart over the burst, at most [`MAX_RESTART_DELAY`]).
    fn restart_delay(&mut self) -> Duration {
        let now = clock::now_nanos();
        let second_ago = now.saturating_sub(1_000_000_000);
        while self
            .recent_restarts
            .front()
            .is_some_and(|t| *t < second_ago)
        {
            self.recent_restarts.pop_front();
        }
        self.recent_restarts.push_back(now);
        let over = self.recent_restarts.len().saturating_sub(RESTART_BURST);
        Duration::from_millis(100 * over as u64).min(MAX_RESTART_DELAY)
    }

    /// Gives back the memory of the bookkeeping maps after many actors stopped (hibernation and
    /// eviction shrink them far below their peak).
    fn shrink_maps(&mut self) {
        for capacity_len in [
            (self.connection_ids.capacity(), self.connection_ids.len()),
            (self.evicting.capacity(), self.evicting.len()),
            (self.hibernating.capacity(), self.hibernating.len()),
        ] {
            if capacity_len.0 > 1024 && capacity_len.1 < capacity_len.0 / 8 {
                self.connection_ids.shrink_to_fit();
                self.evicting.shrink_to_fit();
                self.hibernating.shrink_to_fit();
                return;
            }
        }
    }
}
