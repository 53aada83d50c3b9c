//! One actor per WebSocket connection (`correlation_id`, both directions, whatever transport
//! connection each frame arrived on). It owns the connection's token buckets, per-direction
//! reassembly and last-seen time; it answers control frames and limit violations itself and hands
//! messages (or windows of unfinished ones) to the detector pool.
//!
//! Its policy: the route id of the connection's first frame picks it once ([`PolicySet::resolve`]),
//! and the actor holds it as an `Arc`; each frame costs one atomic load of the running set's
//! generation, and only when that moved (a reload) is the route resolved again, keeping the
//! connection's buckets and reassembly. No frame looks a route up by string otherwise.
//!
//! An actor costs about 7 KB, most of it ractor's channels and task, so a connection idle for a
//! while hibernates: asked by the router, the actor parks its few lasting figures (buckets, close
//! flags) in [`ConnectionShared`] and stops; the next frame starts a new actor from them.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::detector::DetectorPool;
use super::reply::{LastTag, Responder};
use super::upgrades::UpgradeRequests;
use crate::inspect::MessagePart;
use crate::limits::reassembly::{Assembled, MessageKind, Reassembly, ReassemblyError};
use crate::limits::utf8::Utf8Stream;
use crate::limits::{ReassemblyBudget, TokenBucket};
use crate::model::{
    AuditTag, Direction, Frame, Opcode, ReasonCode, Verdict, CLOSE_INVALID_PAYLOAD,
    CLOSE_MESSAGE_TOO_BIG, CLOSE_PROTOCOL_ERROR,
};
use crate::options::InvalidUtf8;
use crate::pipeline::{rate_violation, violation, InspectJob};
use crate::policy::{Policy, SharedPolicy};
#[cfg(doc)]
use crate::routes::PolicySet;
use crate::shared_limits::{self, IpLimiter};
use crate::telemetry::Telemetry;

/// A message to a connection actor.
#[derive(Debug)]
pub enum ConnMsg {
    /// A frame of this WebSocket to decide.
    Frame {
        /// The frame.
        frame: Frame,
        /// Where its decision goes.
        reply: Responder,
    },
    /// The router saw no frame since `idle_since`: park and stop unless that changed.
    Hibernate {
        /// [`crate::clock::now_nanos`] the router based its decision on.
        idle_since: u64,
    },
}

/// What survives hibernation: the connection's buckets and close flags. (Reassembly is never
/// parked: an actor with an unfinished message stays awake.)
#[derive(Debug, Clone, Copy, Default)]
pub struct ParkedState {
    message_bucket: Option<TokenBucket>,
    byte_bucket: Option<TokenBucket>,
    close_seen: [bool; 2],
}

/// Figures about one connection that the router and observers read without messaging the actor.
#[derive(Debug, Default)]
pub struct ConnectionShared {
    /// [`crate::clock::now_nanos`] of the last frame.
    pub last_seen_nanos: AtomicU64,
    /// When the state was created.
    pub created_nanos: AtomicU64,
    /// Frames seen, per direction (index: [`Direction::index`]).
    pub frames: [AtomicU64; 2],
    /// Payload bytes seen, per direction.
    pub bytes: [AtomicU64; 2],
    /// The proxy's route id from the connection's first frame, or learned from its upgrade
    /// request ([`UpgradeRequests`]) when its frames carry none (`None` inside when neither
    /// named one): fixed for the connection's life.
    route_id: OnceLock<Option<Arc<str>>>,
    /// The name of the policy that applies (`default` or the route's), for observers.
    policy_name: Mutex<Option<Arc<str>>>,
    /// The client's IP: from the first frame that carried one, or learned from the WebSocket's
    /// upgrade request ([`UpgradeRequests`]) when its frames carry none.
    pub client_ip: OnceLock<Arc<str>>,
    /// Bytes held for unfinished messages, both directions.
    pub reassembly_bytes: AtomicU64,
    /// Message bucket level (`f64` bits), or [`NO_BUCKET`] while no message limit applies.
    pub message_tokens: AtomicU64,
    /// Byte bucket level (`f64` bits), or [`NO_BUCKET`].
    pub byte_tokens: AtomicU64,
    /// The last violation tag raised on this connection.
    pub last_tag: Arc<LastTag>,
    /// The state of a hibernated actor, taken by the next one.
    parked: Mutex<Option<ParkedState>>,
}

/// Marks a bucket level as absent.
pub const NO_BUCKET: u64 = u64::MAX;

impl ConnectionShared {
    /// Fresh figures for a connection first seen at `now`.
    pub fn new(now: u64) -> Self {
        ConnectionShared {
            last_seen_nanos: AtomicU64::new(now),
            created_nanos: AtomicU64::new(now),
            message_tokens: AtomicU64::new(NO_BUCKET),
            byte_tokens: AtomicU64::new(NO_BUCKET),
            ..ConnectionShared::default()
        }
    }

    /// The route id of the connection's first frame, if it carried one.
    pub fn route(&self) -> Option<&Arc<str>> {
        self.route_id.get().and_then(Option::as_ref)
    }

    /// The name of the policy that applies to the connection (once a frame was decided).
    pub fn policy_name(&self) -> Option<Arc<str>> {
        self.policy_name
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The last violation tag.
    pub fn last_tag(&self) -> Option<AuditTag> {
        self.last_tag.get()
    }
}

fn bucket_bits(bucket: Option<&TokenBucket>) -> u64 {
    bucket.map_or(NO_BUCKET, |b| b.level().to_bits())
}

/// Reads a bucket level stored by [`ConnectionShared`].
pub fn bucket_level(bits: u64) -> Option<f64> {
    (bits != NO_BUCKET).then(|| f64::from_bits(bits))
}

/// What every connection actor shares: the running policy and the detector pool.
#[derive(Debug)]
pub struct ConnectionContext {
    /// The running policy.
    pub policy: Arc<SharedPolicy>,
    /// Where inspection jobs go.
    pub detectors: Arc<DetectorPool>,
    /// Bytes all connections may hold for unfinished messages.
    pub budget: Arc<ReassemblyBudget>,
    /// Per-client-IP budgets (shared through Redis when configured).
    pub ip_limiter: Arc<IpLimiter>,
    /// Client IPs and route ids learned from upgrade requests, for frames that carry none.
    pub upgrades: Arc<UpgradeRequests>,
}

/// Start-up arguments of a connection actor.
#[derive(Debug)]
pub struct ConnectionArgs {
    /// Shared figures (also held by the registry).
    pub shared: Arc<ConnectionShared>,
    /// Policy and detectors.
    pub context: Arc<ConnectionContext>,
}

/// The actor.
#[derive(Debug, Default)]
pub struct ConnectionActor;

/// The per-connection state.
#[derive(Debug)]
pub struct ConnectionState {
    /// Set when the actor drains itself to hibernate; its state is parked when it stops.
    hibernating: bool,
    shared: Arc<ConnectionShared>,
    context: Arc<ConnectionContext>,
    /// The policy of this connection's route, and the set generation it was resolved in.
    policy: Option<(u64, Arc<Policy>)>,
    reassembly: [Reassembly; 2],
    /// UTF-8 validation of the text message in progress, per direction.
    utf8: [Utf8Stream; 2],
    /// Bytes currently held in `reassembly`, as last reported to the gauge.
    reported_buffer_bytes: usize,
    message_bucket: Option<TokenBucket>,
    byte_bucket: Option<TokenBucket>,
    close_seen: [bool; 2],
    /// Set once this actor looked for an IP learned from the upgrade request (one look per
    /// actor, not per frame).
    looked_up_upgrade: bool,
}

impl Actor for ConnectionActor {
    type Msg = ConnMsg;
    type State = ConnectionState;
    type Arguments = ConnectionArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let parked = args
            .shared
            .parked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        Ok(ConnectionState {
            hibernating: false,
            policy: None,
            shared: args.shared,
            context: args.context,
            reassembly: Default::default(),
            utf8: Default::default(),
            reported_buffer_bytes: 0,
            message_bucket: parked.message_bucket,
            byte_bucket: parked.byte_bucket,
            close_seen: parked.close_seen,
            looked_up_upgrade: false,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if state.hibernating {
            let parked = ParkedState {
                message_bucket: state.message_bucket,
                byte_bucket: state.byte_bucket,
                close_seen: state.close_seen,
            };
            *state
                .shared
                .parked
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(parked);
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ConnMsg::Frame { frame, mut reply } => {
                reply.observe_connection(Arc::clone(&state.shared.last_tag));
                let ended = state.on_frame(frame, reply);
                state.publish_state();
                if ended {
                    // Frames already queued are still answered; later ones go to a new actor.
                    let _ = myself.drain();
                }
            }
            ConnMsg::Hibernate { idle_since } => {
                let seen = state.shared.last_seen_nanos.load(Ordering::Relaxed);
                let mid_message = state.reassembly.iter().any(Reassembly::is_mid_message);
                if seen <= idle_since && !mid_message && !state.hibernating {
                    state.hibernating = true;
                    let _ = myself.drain();
                }
            }
        }
        Ok(())
    }
}

impl ConnectionState {
    /// Decides or dispatches one frame. Returns true when the connection has ended (a close frame
    /// was seen in both directions).
    fn on_frame(&mut self, frame: Frame, mut reply: Responder) -> bool {
        #[cfg(feature = "fault-injection")]
        crate::fault_injection::maybe_crash_connection(frame.correlation_id.as_bytes());
        let now = reply.received_nanos();
        let shared = &self.shared;
        shared.last_seen_nanos.store(now, Ordering::Relaxed);
        let dir = frame.direction.index();
        shared.frames[dir].fetch_add(1, Ordering::Relaxed);
        shared.bytes[dir].fetch_add(frame.payload.len() as u64, Ordering::Relaxed);
        let mut upgrade_route = None;
        if !self.looked_up_upgrade {
            // The upgrade request's IP and route (gRPC v2 frames carry neither); taken even when
            // the frame has its own, so that the entry does not wait for the sweep.
            self.looked_up_upgrade = true;
            if let Some(upgrade) = self.context.upgrades.take(&frame.correlation_id) {
                if let Some(ip) = upgrade.client_ip {
                    if frame.client_ip.as_ref().is_none_or(|ip| ip.is_empty()) {
                        let _ = shared.client_ip.set(ip);
                    }
                }
                upgrade_route = upgrade.route_id;
            }
        }
        if shared.route_id.get().is_none() {
            let _ = shared
                .route_id
                .set(frame.route_id.clone().or(upgrade_route));
        }
        if let Some(ip) = frame.client_ip.as_ref().filter(|ip| !ip.is_empty()) {
            let _ = shared.client_ip.set(Arc::clone(ip));
        } else {
            reply.observe_client_ip(shared.client_ip.get());
        }
        let policy = Arc::clone(self.route_policy());
        reply.observe_policy(&policy);
        match frame.opcode {
            Opcode::Ping | Opcode::Pong | Opcode::Reserved => {
                reply.send(Verdict::allow(), None, false);
                false
            }
            Opcode::Close => {
                reply.send(Verdict::allow(), None, false);
                self.close_seen[dir] = true;
                self.reassembly[dir].clear();
                self.close_seen[0] && self.close_seen[1]
            }
            Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                self.on_data(frame, reply, &policy, now);
                false
            }
        }
    }

    /// The policy of this connection's route: resolved on the first frame (after a wake from
    /// hibernation too) and again only when the running set changed.
    fn route_policy(&mut self) -> &Arc<Policy> {
        let shared_policy = &self.context.policy;
        let generation = shared_policy.generation();
        if self.policy.as_ref().is_none_or(|(g, _)| *g != generation) {
            let set = shared_policy.load_set();
            let policy = Arc::clone(set.resolve(self.shared.route().map(|r| &**r)));
            *self
                .shared
                .policy_name
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&policy.name));
            self.policy = Some((generation, policy));
        }
        &self.policy.as_ref().expect("resolved above").1
    }

    fn on_data(&mut self, frame: Frame, reply: Responder, policy: &Arc<Policy>, now: u64) {
        let options = &policy.options;
        let mut prior = Verdict::allow();
        if frame.direction == Direction::ClientToServer {
            if let Some(rate_verdict) = self.check_rates(&frame, policy, now) {
                if options.block_mode {
                    // The frame is refused; keep reassembly consistent with what passes.
                    let _ = self.reassembly[0].push(
                        frame.opcode,
                        frame.fin,
                        frame.payload.clone(),
                        &policy.limits,
                    );
                    reply.send(rate_verdict, Some(&frame.payload), options.log_frames);
                    return;
                }
                prior = rate_verdict;
            }
        }
        let dir = frame.direction.index();
        let starts_message = matches!(frame.opcode, Opcode::Text | Opcode::Binary);
        let mut opcode = frame.opcode;
        if starts_message && self.reassembly[dir].is_mid_message() {
            // RFC 6455 5.4: a new data frame inside a fragmented message is a protocol error.
            // Closed with 1002; in detect-only mode the buffered part and the new frame are
            // inspected together (so splitting a payload this way hides nothing).
            let verdict = protocol_violation(
                options,
                CLOSE_PROTOCOL_ERROR,
                "Protocol error: new message inside a fragmented message",
                ReasonCode::InterleavedMessage,
            );
            if options.block_mode {
                self.reassembly[dir].clear();
                self.utf8[dir].reset();
                reply.send(
                    crate::pipeline::merge(prior, verdict),
                    Some(&frame.payload),
                    options.log_frames,
                );
                return;
            }
            prior = crate::pipeline::merge(prior, verdict);
            opcode = Opcode::Continuation;
        }
        let stray_continuation =
            opcode == Opcode::Continuation && !self.reassembly[dir].is_mid_message();
        if starts_message && opcode != Opcode::Continuation {
            self.utf8[dir].reset();
        }
        // The message may grow by what the process-wide budget has left.
        let mut limits = policy.limits;
        let held = self.reassembly[dir].buffered_bytes();
        limits.buffer_cap = limits
            .buffer_cap
            .min(held + self.context.budget.remaining());
        let assembled =
            self.reassembly[dir].push(opcode, frame.fin, frame.payload.clone(), &limits);
        if options.invalid_utf8 == InvalidUtf8::Close && !stray_continuation {
            if let Some(verdict) = self.check_utf8(dir, &assembled, &frame, options) {
                reply.send(
                    crate::pipeline::merge(prior, verdict),
                    Some(&frame.payload),
                    options.log_frames,
                );
                return;
            }
        }
        let (kind, part, data) = match assembled {
            Err(error) => {
                let verdict = size_verdict(policy, error);
                reply.send(
                    crate::pipeline::merge(prior, verdict),
                    Some(&frame.payload),
                    options.log_frames,
                );
                return;
            }
            Ok(Assembled::Nothing { .. }) => {
                reply.send(prior, None, false);
                return;
            }
            Ok(Assembled::Partial { kind, window }) => (kind, MessagePart::Partial, window),
            Ok(Assembled::Complete { kind, message }) => (kind, MessagePart::Complete, message),
        };
        // Validation looks at complete messages only; a window of an unfinished one goes to the
        // detectors only when they have something to look for.
        let complete = part == MessagePart::Complete;
        let needs_inspection = match kind {
            MessageKind::Text => {
                !policy.inspector.is_empty()
                    || (complete && policy.validator.validates_text(frame.direction))
            }
            MessageKind::Binary => {
                options.inspect_binary
                    || (complete && policy.validator.validates_msgpack_in(frame.direction))
            }
        };
        if !needs_inspection {
            reply.send(prior, None, false);
            return;
        }
        let job = InspectJob {
            policy: Arc::clone(policy),
            kind,
            part,
            data,
            direction: frame.direction,
            prior,
            whole_message: frame.fin && starts_message && opcode != Opcode::Continuation,
        };
        self.context.detectors.submit(job, reply);
    }

    /// Feeds a text message's frame to its direction's UTF-8 check: the close verdict when the
    /// message cannot be valid UTF-8 (decided per message, not per fragment). A stray
    /// continuation (its message's start was never seen) is not judged: it may be binary.
    fn check_utf8(
        &mut self,
        dir: usize,
        assembled: &Result<Assembled, ReassemblyError>,
        frame: &Frame,
        options: &crate::options::PolicyOptions,
    ) -> Option<Verdict> {
        let kind = match assembled {
            Ok(Assembled::Nothing { kind })
            | Ok(Assembled::Partial { kind, .. })
            | Ok(Assembled::Complete { kind, .. }) => *kind,
            Err(_) => {
                // Refused for its size: judged no further.
                self.utf8[dir].reset();
                return None;
            }
        };
        if kind != MessageKind::Text {
            return None;
        }
        let stream = &mut self.utf8[dir];
        let mut result = stream.feed(&frame.payload);
        if frame.fin {
            result = result.and_then(|()| stream.finish());
        }
        if result.is_ok() {
            return None;
        }
        stream.reset();
        if options.block_mode {
            // The connection is being failed: its unfinished message is not kept.
            self.reassembly[dir].clear();
        }
        Some(protocol_violation(
            options,
            CLOSE_INVALID_PAYLOAD,
            "Invalid frame payload data: text is not UTF-8",
            ReasonCode::InvalidUtf8,
        ))
    }

    /// Applies the client's message and byte buckets; returns the violation verdict if one is
    /// exceeded. Only data frames reach here, and a message is counted on its first frame.
    fn check_rates(&mut self, frame: &Frame, policy: &Policy, now: u64) -> Option<Verdict> {
        let options = &policy.options;
        let starts_message = matches!(frame.opcode, Opcode::Text | Opcode::Binary);
        let whole_message = starts_message && frame.fin;
        if options.max_messages_per_sec > 0 && starts_message {
            let rate = f64::from(options.max_messages_per_sec);
            let capacity = rate + f64::from(options.rate_limit_burst);
            let bucket = self
                .message_bucket
                .get_or_insert_with(|| TokenBucket::full(capacity, now));
            if !bucket.try_take(1.0, rate, capacity, now) {
                return Some(rate_violation(
                    options,
                    whole_message,
                    AuditTag::RateLimit,
                    "Policy violation: message rate limit exceeded",
                    ReasonCode::MessageRate,
                ));
            }
        }
        if options.max_bytes_per_sec > 0 {
            let rate = options.max_bytes_per_sec as f64;
            let bucket = self
                .byte_bucket
                .get_or_insert_with(|| TokenBucket::full(rate, now));
            if !bucket.try_take(frame.payload.len() as f64, rate, rate, now) {
                return Some(rate_violation(
                    options,
                    whole_message,
                    AuditTag::RateLimit,
                    "Policy violation: byte rate limit exceeded",
                    ReasonCode::ByteRate,
                ));
            }
        }
        self.check_ip_budget(frame, policy, starts_message, whole_message, now)
    }

    /// Charges the frame to its client IP's budget in the policy's scope (issue 17; never waits
    /// for Redis). The IP is the frame's own, else the connection's (learned from an earlier
    /// frame or from the upgrade request); a frame with neither is counted and logged as one
    /// the budget cannot apply to.
    fn check_ip_budget(
        &self,
        frame: &Frame,
        policy: &Policy,
        starts_message: bool,
        whole_message: bool,
        now: u64,
    ) -> Option<Verdict> {
        let options = &policy.options;
        let limits = shared_limits::limits_of(options);
        if limits.is_off() {
            return None;
        }
        let ip = frame
            .client_ip
            .as_ref()
            .filter(|ip| !ip.is_empty())
            .or_else(|| self.shared.client_ip.get());
        let Some(ip) = ip else {
            self.context
                .ip_limiter
                .count_without_ip(&frame.correlation_id);
            return None;
        };
        let over = self.context.ip_limiter.check(
            &policy.ip_budget_scope,
            ip,
            starts_message,
            frame.payload.len(),
            limits,
            now,
        )?;
        Some(shared_limits::over_budget_verdict(
            options,
            over,
            whole_message,
        ))
    }

    /// Publishes what observers read: reassembly memory (also to the global gauge) and bucket
    /// levels.
    fn publish_state(&mut self) {
        let now = self.reassembly[0].buffered_bytes() + self.reassembly[1].buffered_bytes();
        if now != self.reported_buffer_bytes {
            let delta = now as isize - self.reported_buffer_bytes as isize;
            Telemetry::get().add_reassembly_bytes(delta as i64);
            self.context.budget.adjust(delta);
            self.reported_buffer_bytes = now;
            self.shared
                .reassembly_bytes
                .store(now as u64, Ordering::Relaxed);
        }
        let shared = &self.shared;
        shared
            .message_tokens
            .store(bucket_bits(self.message_bucket.as_ref()), Ordering::Relaxed);
        shared
            .byte_tokens
            .store(bucket_bits(self.byte_bucket.as_ref()), Ordering::Relaxed);
    }
}

impl Drop for ConnectionState {
    /// Gives the held reassembly bytes back, however the actor ended (evicted, closed or crashed).
    fn drop(&mut self) {
        for reassembly in &mut self.reassembly {
            reassembly.clear();
        }
        self.publish_state();
    }
}

/// A protocol violation by the peer: `code` (1002, 1007) in block mode, tagged either way.
fn protocol_violation(
    options: &crate::options::PolicyOptions,
    code: u16,
    reason: &'static str,
    reason_code: ReasonCode,
) -> Verdict {
    violation(
        options,
        AuditTag::ProtocolViolation,
        code,
        Cow::Borrowed(reason),
        reason_code,
    )
}

/// 1009 for size limits; a full reassembly buffer is an inspection limit, decided by fail-open.
fn size_verdict(policy: &Policy, error: ReassemblyError) -> Verdict {
    let options = &policy.options;
    let (reason_code, reason): (ReasonCode, Cow<'static, str>) = match error {
        ReassemblyError::FrameTooBig {
            kind: MessageKind::Text,
            limit,
            ..
        } => (
            ReasonCode::TextFrameSize,
            format!("Message too big: text frame over {limit} bytes").into(),
        ),
        ReassemblyError::FrameTooBig {
            kind: MessageKind::Binary,
            limit,
            ..
        } => (
            ReasonCode::BinaryFrameSize,
            format!("Message too big: binary frame over {limit} bytes").into(),
        ),
        ReassemblyError::MessageTooBig { limit, .. } => (
            ReasonCode::MessageSize,
            format!("Message too big: message over {limit} bytes").into(),
        ),
        ReassemblyError::BufferFull { limit, .. } => {
            if options.fail_open {
                let mut verdict = Verdict::failure(true, ReasonCode::ReassemblyBuffer);
                verdict.add_tag(AuditTag::SizeLimit);
                return verdict;
            }
            (
                ReasonCode::ReassemblyBuffer,
                format!("Message too big to inspect: over {limit} bytes").into(),
            )
        }
    };
    violation(
        options,
        AuditTag::SizeLimit,
        CLOSE_MESSAGE_TOO_BIG,
        reason,
        reason_code,
    )
}
