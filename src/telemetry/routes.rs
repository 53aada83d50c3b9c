//! Frame and detection counters per policy-file route: `ws_agent_frames_total` and
//! `ws_agent_detections_total` with a `route` label. Only the routes a policy file names get a
//! label of their own (the route's name); frames under the file's default policy count as
//! `other`, so the label's values are bounded by the file (at most
//! [`crate::routes::MAX_ROUTES`] + 1). Without a policy file the series keep no `route` label.
//! A set of handles is registered when a policy is compiled, and each policy holds its own, so
//! counting a frame is one atomic add on a handle the connection already holds.

use std::sync::{Arc, OnceLock};

use metrics::{counter, Counter};

use super::{names, DECISIONS, DIRECTIONS, OPCODES};
use crate::model::{AuditTag, Direction, Opcode, Verdict};

/// The label value of frames decided under a policy file's default policy.
pub const OTHER_ROUTE: &str = "other";

/// Counter handles for one route label (or for none).
pub struct RouteCounters {
    /// The `route` label, `None` for the unlabeled series.
    label: Option<Arc<str>>,
    frames: Vec<Counter>,
    detections: Vec<Counter>,
}

impl std::fmt::Debug for RouteCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteCounters")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl RouteCounters {
    /// Handles labelled `route = label` (registered against the installed recorder; a label seen
    /// before gets the same series back, so counts carry over a reload).
    pub fn labeled(label: &str) -> Arc<Self> {
        Arc::new(Self::register(Some(Arc::from(label))))
    }

    /// The handles without a `route` label (no policy file), shared by every such policy.
    pub fn unlabeled() -> Arc<Self> {
        static UNLABELED: OnceLock<Arc<RouteCounters>> = OnceLock::new();
        Arc::clone(UNLABELED.get_or_init(|| Arc::new(Self::register(None))))
    }

    /// The `route` label, if any.
    pub fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    fn register(label: Option<Arc<str>>) -> Self {
        let mut frames = Vec::with_capacity(DIRECTIONS.len() * OPCODES.len() * DECISIONS.len());
        for direction in DIRECTIONS {
            for opcode in OPCODES {
                for decision in DECISIONS {
                    frames.push(match &label {
                        Some(route) => counter!(names::FRAMES,
                            "direction" => direction.as_str(),
                            "opcode" => opcode.as_str(),
                            "decision" => decision,
                            "route" => route.to_string()),
                        None => counter!(names::FRAMES,
                            "direction" => direction.as_str(),
                            "opcode" => opcode.as_str(),
                            "decision" => decision),
                    });
                }
            }
        }
        let detections = AuditTag::ALL
            .iter()
            .map(|tag| match &label {
                Some(route) => counter!(names::DETECTIONS,
                    "tag" => tag.as_str(), "route" => route.to_string()),
                None => counter!(names::DETECTIONS, "tag" => tag.as_str()),
            })
            .collect();
        RouteCounters {
            label,
            frames,
            detections,
        }
    }

    /// Counts one decided frame and its tags.
    pub fn record(&self, direction: Direction, opcode: Opcode, verdict: &Verdict) {
        let opcode_index = OPCODES.iter().position(|o| *o == opcode).unwrap_or(0);
        let index = (direction.index() * OPCODES.len() + opcode_index) * DECISIONS.len()
            + verdict.action.index();
        self.frames[index].increment(1);
        for tag in &verdict.tags {
            self.detections[tag.index()].increment(1);
        }
    }
}
