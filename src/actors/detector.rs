//! The detector pool: stateless actors that run [`crate::pipeline::evaluate`] on inspection jobs.
//! Each actor has a bounded queue (counted here, since ractor mailboxes are unbounded); a job that
//! finds every queue full is decided by `--fail-open` at once and counted. A crashed detector is
//! replaced by the router; the jobs it held are answered by their responders' fail-open path.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::reply::Responder;
use crate::model::ReasonCode;
use crate::pipeline::{evaluate, InspectJob, PipelineScratch};
use crate::telemetry::Telemetry;

/// Jobs one detector may have queued before the pool counts it as full.
pub const DETECTOR_QUEUE_CAPACITY: usize = 1024;

/// A message to a detector.
#[derive(Debug)]
pub enum DetectorMsg {
    /// Inspect and answer.
    Inspect {
        /// What to inspect.
        job: InspectJob,
        /// Where the verdict goes.
        reply: Responder,
    },
}

/// One pool slot: the current actor in it and its queue depth.
#[derive(Debug, Default)]
pub struct DetectorSlot {
    actor: RwLock<Option<ActorRef<DetectorMsg>>>,
    queued: AtomicUsize,
}

impl DetectorSlot {
    /// Puts a (new) actor in the slot; its predecessor's queue is gone, so the depth restarts at 0.
    pub fn install(&self, actor: ActorRef<DetectorMsg>) {
        *self.actor.write().unwrap_or_else(|e| e.into_inner()) = Some(actor);
        self.queued.store(0, Ordering::Release);
    }

    /// The actor currently in the slot, if any.
    pub fn actor(&self) -> Option<ActorRef<DetectorMsg>> {
        self.actor.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Jobs queued on this slot's actor.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

/// The pool the connection actors submit jobs to.
#[derive(Debug)]
pub struct DetectorPool {
    slots: Box<[Arc<DetectorSlot>]>,
    next: AtomicUsize,
    queue_capacity: usize,
    saturated: AtomicUsize,
}

impl DetectorPool {
    /// A pool of `size` empty slots (the router fills them).
    pub fn new(size: usize, queue_capacity: usize) -> Self {
        DetectorPool {
            slots: (0..size.max(1)).map(|_| Arc::default()).collect(),
            next: AtomicUsize::new(0),
            queue_capacity: queue_capacity.max(1),
            saturated: AtomicUsize::new(0),
        }
    }

    /// The slots, for the router to fill and supervise.
    pub fn slots(&self) -> &[Arc<DetectorSlot>] {
        &self.slots
    }

    /// Jobs the whole pool can hold at once.
    pub fn capacity(&self) -> usize {
        self.slots.len() * self.queue_capacity
    }

    /// Jobs refused so far because every queue was full.
    pub fn saturated_total(&self) -> usize {
        self.saturated.load(Ordering::Relaxed)
    }

    /// Jobs queued over all detectors.
    pub fn queued(&self) -> usize {
        self.slots.iter().map(|s| s.queued()).sum()
    }

    /// Hands `job` to the least loaded of two detectors; decides by `--fail-open` when both are
    /// full (or gone).
    pub fn submit(&self, job: InspectJob, reply: Responder) {
        let n = self.slots.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let second = (first + n / 2 + 1) % n;
        let slot = if self.slots[second].queued() < self.slots[first].queued() {
            &self.slots[second]
        } else {
            &self.slots[first]
        };
        if slot.queued.fetch_add(1, Ordering::AcqRel) >= self.queue_capacity {
            slot.queued.fetch_sub(1, Ordering::AcqRel);
            self.saturated.fetch_add(1, Ordering::Relaxed);
            Telemetry::get().record_saturation();
            reply.fail(ReasonCode::DetectorSaturated);
            return;
        }
        let Some(actor) = slot.actor() else {
            slot.queued.fetch_sub(1, Ordering::AcqRel);
            reply.fail(ReasonCode::DetectorUnavailable);
            return;
        };
        if let Err(error) = actor.send_message(DetectorMsg::Inspect { job, reply }) {
            slot.queued.fetch_sub(1, Ordering::AcqRel);
            // The message comes back with the error; dropping it answers through the responder.
            drop(error);
        }
    }
}

/// A stateless detector actor.
#[derive(Debug, Default)]
pub struct Detector;

/// A detector's reusable buffers and the slot whose depth it maintains.
#[derive(Debug)]
pub struct DetectorState {
    scratch: PipelineScratch,
    slot: Arc<DetectorSlot>,
}

impl Actor for Detector {
    type Msg = DetectorMsg;
    type State = DetectorState;
    type Arguments = Arc<DetectorSlot>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        slot: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(DetectorState {
            scratch: PipelineScratch::default(),
            slot,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let DetectorMsg::Inspect { job, reply } = message;
        #[cfg(feature = "fault-injection")]
        crate::fault_injection::maybe_panic(&job.data);
        let verdict = evaluate(&job, &mut state.scratch);
        let log_frames = job.policy.options.log_frames;
        reply.send(verdict, Some(&job.data), log_frames);
        state.slot.queued.fetch_sub(1, Ordering::AcqRel);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use tokio::sync::mpsc;

    use super::*;
    use crate::actors::ReplyTarget;
    use crate::inspect::MessagePart;
    use crate::limits::reassembly::MessageKind;
    use crate::model::{AuditTag, Direction, Frame, Opcode, Verdict};
    use crate::options::PolicyOptions;
    use crate::policy::Policy;

    fn job_and_reply(
        queue: &mpsc::UnboundedSender<crate::actors::Answer>,
    ) -> (InspectJob, Responder) {
        let frame = Frame {
            correlation_id: Arc::from("pool"),
            direction: Direction::ClientToServer,
            opcode: Opcode::Text,
            fin: true,
            payload: Bytes::from_static(b"hello"),
            route_id: None,
            client_ip: None,
        };
        let job = InspectJob {
            policy: Arc::new(Policy::compile(PolicyOptions::default()).unwrap()),
            kind: MessageKind::Text,
            part: MessagePart::Complete,
            data: frame.payload.clone(),
            direction: frame.direction,
            prior: Verdict::allow(),
        };
        let target = ReplyTarget::Queue {
            queue: queue.clone(),
            permit: None,
        };
        (job, Responder::new(&frame, target, true, 0))
    }

    #[test]
    fn a_full_pool_answers_at_once_by_fail_open_exactly_once() {
        let pool = DetectorPool::new(1, 1);
        pool.slots()[0].queued.store(1, Ordering::Release);
        let (queue, mut answers) = mpsc::unbounded_channel();
        let (job, reply) = job_and_reply(&queue);
        pool.submit(job, reply);
        drop(queue);
        let answer = answers.try_recv().expect("answered at once");
        assert_eq!(
            answer.verdict.uninspected,
            Some(ReasonCode::DetectorSaturated)
        );
        assert!(answer.verdict.tags.contains(&AuditTag::FailOpen));
        assert!(answers.try_recv().is_err(), "answered twice");
        assert_eq!(pool.saturated_total(), 1);
        assert_eq!(
            pool.slots()[0].queued(),
            1,
            "the refused job was counted in"
        );
    }

    #[test]
    fn a_slot_without_actor_answers_exactly_once() {
        let pool = DetectorPool::new(1, 4);
        let (queue, mut answers) = mpsc::unbounded_channel();
        let (job, reply) = job_and_reply(&queue);
        pool.submit(job, reply);
        drop(queue);
        let answer = answers.try_recv().expect("answered at once");
        assert_eq!(
            answer.verdict.uninspected,
            Some(ReasonCode::DetectorUnavailable)
        );
        assert!(answers.try_recv().is_err(), "answered twice");
        assert_eq!(pool.slots()[0].queued(), 0);
    }

    #[test]
    fn a_responder_dropped_unanswered_answers_once_by_fail_open() {
        let (queue, mut answers) = mpsc::unbounded_channel();
        let (_job, reply) = job_and_reply(&queue);
        drop(reply);
        drop(queue);
        let answer = answers.try_recv().expect("the drop answered");
        assert_eq!(answer.verdict.uninspected, Some(ReasonCode::InspectionLost));
        assert!(answers.try_recv().is_err(), "answered twice");
    }
}
