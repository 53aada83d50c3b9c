//! The single exit of every frame: a [`Responder`] carries where the answer goes and what the frame
//! was, records the decision's figures and log line, and, if it is dropped unanswered (an actor
//! crashed or a queue was torn down), answers by `--fail-open` itself.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use crate::clock;
use crate::model::{AuditTag, Direction, Frame, Opcode, ReasonCode, Verdict};
use crate::policy::Policy;
use crate::telemetry::Telemetry;
use crate::util::{escaped_excerpt, for_log};

/// Bytes of payload a block log line may show (with `--log-frames`).
const LOG_EXCERPT_BYTES: usize = 64;

/// A decided frame on its way back to a multiplexing transport.
#[derive(Debug)]
pub struct Answer {
    /// The WebSocket connection the frame belonged to.
    pub correlation_id: Arc<str>,
    /// The decision.
    pub verdict: Verdict,
    /// Released once the answer is written, bounding a transport connection's in-flight frames.
    pub permit: Option<OwnedSemaphorePermit>,
}

/// Where a decision goes.
#[derive(Debug)]
pub enum ReplyTarget {
    /// A caller awaiting this one frame.
    Oneshot(oneshot::Sender<Verdict>),
    /// A transport connection's outbound queue (answers may leave out of order).
    Queue {
        /// The connection's writer queue.
        queue: mpsc::UnboundedSender<Answer>,
        /// The in-flight slot this frame holds.
        permit: Option<OwnedSemaphorePermit>,
    },
}

/// What a log line and the metrics need to know about the frame.
#[derive(Debug, Clone)]
struct FrameMeta {
    correlation_id: Arc<str>,
    route_id: Option<Arc<str>>,
    client_ip: Option<Arc<str>>,
    direction: Direction,
    opcode: Opcode,
    received_nanos: u64,
}

/// The last violation tag raised on one WebSocket connection, recorded by the responders of its
/// frames when they are answered (a connection's figures hold it; observers read it).
#[derive(Debug, Default)]
pub struct LastTag(AtomicU8);

impl LastTag {
    /// Records the violation tag of a verdict, if it has one.
    pub fn record(&self, verdict: &Verdict) {
        if let Some(tag) = verdict.primary_tag() {
            // AuditTag::index + 1; 0 stands for none.
            self.0.store(tag.index() as u8 + 1, Ordering::Relaxed);
        }
    }

    /// The last violation tag, if any was raised.
    pub fn get(&self) -> Option<AuditTag> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            n => AuditTag::from_index(usize::from(n) - 1),
        }
    }
}

/// The promise of one answer for one frame.
#[derive(Debug)]
pub struct Responder {
    target: Option<ReplyTarget>,
    meta: FrameMeta,
    fail_open: bool,
    last_tag: Option<Arc<LastTag>>,
    /// The policy the frame is decided under (its name and route counters), once known.
    policy: Option<Arc<Policy>>,
}

impl Responder {
    /// A responder for `frame`, received at `received_nanos` ([`clock::now_nanos`]).
    pub fn new(frame: &Frame, target: ReplyTarget, fail_open: bool, received_nanos: u64) -> Self {
        Responder {
            target: Some(target),
            meta: FrameMeta {
                correlation_id: Arc::clone(&frame.correlation_id),
                route_id: frame.route_id.clone(),
                client_ip: frame.client_ip.clone(),
                direction: frame.direction,
                opcode: frame.opcode,
                received_nanos,
            },
            fail_open,
            last_tag: None,
            policy: None,
        }
    }

    /// When the frame was received ([`clock::now_nanos`]): the frame's time for its
    /// connection's buckets and last-seen mark, so that the clock is read once per frame on the
    /// way in.
    pub fn received_nanos(&self) -> u64 {
        self.meta.received_nanos
    }

    /// Counts this frame under `policy`'s route, names the policy in its violation log line, and
    /// answers a failed inspection by that policy's `fail-open`.
    pub fn observe_policy(&mut self, policy: &Arc<Policy>) {
        self.fail_open = policy.options.fail_open;
        self.policy = Some(Arc::clone(policy));
    }

    /// Names the connection's client IP in the violation log line of a frame that carried none
    /// (learned from an earlier frame or the upgrade request).
    pub fn observe_client_ip(&mut self, client_ip: Option<&Arc<str>>) {
        if self.meta.client_ip.as_ref().is_none_or(|ip| ip.is_empty()) {
            if let Some(ip) = client_ip {
                self.meta.client_ip = Some(Arc::clone(ip));
            }
        }
    }

    /// Records this frame's violation tag in `last_tag` (its connection's) when it is answered.
    pub fn observe_connection(&mut self, last_tag: Arc<LastTag>) {
        self.last_tag = Some(last_tag);
    }

    /// Answers with `verdict`. `payload` is logged (escaped, cut to 64 bytes) on a violation when
    /// `log_frames` is on.
    pub fn send(mut self, verdict: Verdict, payload: Option<&[u8]>, log_frames: bool) {
        self.deliver(verdict, payload.filter(|_| log_frames));
    }

    /// Answers by `--fail-open` because inspection could not complete.
    pub fn fail(mut self, reason: ReasonCode) {
        let verdict = Verdict::failure(self.fail_open, reason);
        self.deliver(verdict, None);
    }

    fn deliver(&mut self, verdict: Verdict, excerpt: Option<&[u8]>) {
        let Some(target) = self.target.take() else {
            return;
        };
        let meta = &self.meta;
        let latency = clock::now_nanos().saturating_sub(meta.received_nanos);
        let telemetry = Telemetry::get();
        match &self.policy {
            Some(policy) => telemetry.record_routed_decision(
                &policy.counters,
                meta.direction,
                meta.opcode,
                &verdict,
                latency,
            ),
            None => telemetry.record_decision(meta.direction, meta.opcode, &verdict, latency),
        }
        if let Some(reason) = verdict.uninspected {
            telemetry.record_uninspected(meta.direction, reason);
        }
        if !verdict.tags.is_empty() {
            let policy = self.policy.as_ref().map(|p| &*p.name);
            log_verdict(meta, policy, &verdict, excerpt);
            if let Some(last_tag) = &self.last_tag {
                last_tag.record(&verdict);
            }
        }
        match target {
            ReplyTarget::Oneshot(sender) => {
                let _ = sender.send(verdict);
            }
            ReplyTarget::Queue { queue, permit } => {
                let _ = queue.send(Answer {
                    correlation_id: Arc::clone(&meta.correlation_id),
                    verdict,
                    permit,
                });
            }
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if self.target.is_some() {
            let verdict = Verdict::failure(self.fail_open, ReasonCode::InspectionLost);
            self.deliver(verdict, None);
        }
    }
}

/// One structured line per violation (or fail-open decision).
fn log_verdict(meta: &FrameMeta, policy: Option<&str>, verdict: &Verdict, excerpt: Option<&[u8]>) {
    let decision = verdict.action.as_str();
    let tag = verdict.primary_tag().map_or("", |t| t.as_str());
    let rule_id = verdict.rule_ids.first().map_or("", |r| r.as_ref());
    let excerpt = excerpt.map(|bytes| escaped_excerpt(bytes, LOG_EXCERPT_BYTES));
    tracing::warn!(
        correlation_id = %for_log(&*meta.correlation_id),
        route = %for_log(meta.route_id.as_deref().unwrap_or("")),
        policy = %for_log(policy.unwrap_or("")),
        client_ip = %for_log(meta.client_ip.as_deref().unwrap_or("")),
        direction = meta.direction.as_str(),
        opcode = meta.opcode.as_str(),
        tag,
        rule_id,
        tags = ?verdict.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        reason_codes = ?verdict.reason_codes,
        decision,
        payload = excerpt.as_deref().unwrap_or(""),
        "frame violation"
    );
}
