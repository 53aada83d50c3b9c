//! Turns an inspection job into a [`Verdict`]: runs the detectors and validators of the job's
//! policy over the message (or window) and applies block mode / detect-only and the block action.
//! Also builds the verdicts for size and rate violations, so that every decision follows the same
//! rules.
//!
//! Block action (`block-action` for content violations, `rate-limit-action` for rate limits):
//! `close` answers 1008; `drop` removes the offending message and keeps the connection, but only
//! for a message that arrived in one frame. The proxies forward every fragment as it is decided
//! and do not repair a message with a dropped fragment: when a violation shows in a fragmented
//! message, its earlier fragments are already on their way (and dropping the first one would leave
//! continuations without a start), so that message is closed with 1008 whatever the action, with
//! the reason code `fragmented-message`. Size limits (1009) and protocol violations always close.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;

use crate::inspect::{Finding, MessagePart, Scratch};
use crate::limits::reassembly::MessageKind;
use crate::model::{Action, AuditTag, Direction, ReasonCode, Verdict, CLOSE_POLICY_VIOLATION};
use crate::options::{PolicyOptions, ViolationAction};
use crate::policy::Policy;
use crate::validate::Reason;

/// One message (or window of an unfinished one) to inspect, with the policy that applies to it.
#[derive(Debug)]
pub struct InspectJob {
    /// The policy in force when the frame arrived.
    pub policy: Arc<Policy>,
    /// Text or binary.
    pub kind: MessageKind,
    /// Whole message or window.
    pub part: MessagePart,
    /// The bytes to inspect.
    pub data: Bytes,
    /// Which way the message travels.
    pub direction: Direction,
    /// Violations already found for this frame (detect-only rate limits); usually empty.
    pub prior: Verdict,
    /// The frame carries a whole message (not fragmented): only then may a violation be dropped.
    pub whole_message: bool,
}

/// Reusable buffers of one detector.
#[derive(Debug, Default)]
pub struct PipelineScratch {
    inspect: Scratch,
    findings: Vec<Finding>,
}

/// Runs every enabled check of `job.policy` over `job.data`: the content detectors on every part,
/// and schema validation (with the content detectors on MessagePack strings) on complete messages.
pub fn evaluate(job: &InspectJob, scratch: &mut PipelineScratch) -> Verdict {
    let policy = &job.policy;
    scratch.findings.clear();
    let mut invalid = None;
    match job.kind {
        MessageKind::Text => {
            // Invalid UTF-8 only gets here with `--invalid-utf8 inspect` (or in a window cut
            // inside a character); overlong `<`, `>`, `'`, `"` are read as those characters.
            let text = crate::inspect::lossy::read_text(&job.data);
            policy.inspector.inspect_text(
                &text,
                job.part,
                &mut scratch.inspect,
                &mut scratch.findings,
            );
            if job.part == MessagePart::Complete && policy.validator.validates_text(job.direction) {
                invalid = policy
                    .validator
                    .check_text_in(job.direction, &job.data)
                    .err();
            }
        }
        MessageKind::Binary => {
            if policy.options.inspect_binary {
                policy.inspector.inspect_binary(
                    &job.data,
                    job.part,
                    &mut scratch.inspect,
                    &mut scratch.findings,
                );
            }
            if job.part == MessagePart::Complete
                && policy.validator.validates_msgpack_in(job.direction)
            {
                let mut strings = Vec::new();
                invalid = policy
                    .validator
                    .check_msgpack(&job.data, job.direction, &mut strings)
                    .err();
                if !policy.inspector.is_empty() {
                    for text in strings {
                        policy.inspector.inspect_text(
                            text,
                            MessagePart::Complete,
                            &mut scratch.inspect,
                            &mut scratch.findings,
                        );
                    }
                }
            }
        }
    }
    let mut verdict = job.prior.clone();
    if scratch.findings.is_empty() && invalid.is_none() {
        return verdict;
    }
    let first = scratch
        .findings
        .first()
        .map_or(AuditTag::SchemaInvalid, |finding| finding.tag);
    for finding in &scratch.findings {
        verdict.add_tag(finding.tag);
        if !verdict.rule_ids.contains(&finding.rule_id) {
            verdict.rule_ids.push(finding.rule_id.clone());
        }
    }
    if let Some(invalid) = invalid {
        verdict.add_tag(AuditTag::SchemaInvalid);
        verdict
            .reason_codes
            .extend(invalid.reason_codes.into_iter().map(Reason::into_code));
    }
    enforce(
        &policy.options,
        verdict,
        CLOSE_POLICY_VIOLATION,
        violation_reason(first),
        ViolationAction::answer(policy.options.block_action, job.whole_message),
    )
}

/// A verdict for a single violation found outside the detectors (size, rate, inspection limits).
pub fn violation(
    options: &PolicyOptions,
    tag: AuditTag,
    code: u16,
    reason: Cow<'static, str>,
    reason_code: ReasonCode,
) -> Verdict {
    violation_answered(options, Answer::Close, tag, code, reason, reason_code)
}

/// A rate-limit violation, answered by `rate-limit-action` (`whole_message`: the frame carries a
/// whole message, so it may be dropped).
pub fn rate_violation(
    options: &PolicyOptions,
    whole_message: bool,
    tag: AuditTag,
    reason: &'static str,
    reason_code: ReasonCode,
) -> Verdict {
    violation_answered(
        options,
        ViolationAction::answer(options.rate_limit_action, whole_message),
        tag,
        CLOSE_POLICY_VIOLATION,
        Cow::Borrowed(reason),
        reason_code,
    )
}

fn violation_answered(
    options: &PolicyOptions,
    answer: Answer,
    tag: AuditTag,
    code: u16,
    reason: Cow<'static, str>,
    reason_code: ReasonCode,
) -> Verdict {
    let mut verdict = Verdict::allow();
    verdict.add_tag(tag);
    verdict.add_reason(reason_code);
    enforce(options, verdict, code, reason, answer)
}

/// How a violation is answered in block mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Close the WebSocket.
    Close,
    /// Drop the message.
    Drop,
    /// `drop` was asked for, but the message is fragmented: close, and say why.
    CloseFragmented,
}

trait ActionAnswer {
    fn answer(self, whole_message: bool) -> Answer;
}

impl ActionAnswer for ViolationAction {
    fn answer(self, whole_message: bool) -> Answer {
        match (self, whole_message) {
            (ViolationAction::Close, _) => Answer::Close,
            (ViolationAction::Drop, true) => Answer::Drop,
            (ViolationAction::Drop, false) => Answer::CloseFragmented,
        }
    }
}

/// Merges `extra` (a later verdict for the same frame) into `verdict`.
pub fn merge(mut verdict: Verdict, extra: Verdict) -> Verdict {
    for tag in extra.tags {
        verdict.add_tag(tag);
    }
    verdict.rule_ids.extend(extra.rule_ids);
    verdict.reason_codes.extend(extra.reason_codes);
    verdict.uninspected = verdict.uninspected.or(extra.uninspected);
    if verdict.is_allow() {
        verdict.action = extra.action;
    }
    verdict
}

/// Block mode closes the connection (or drops the message, by `answer`); detect-only allows and
/// adds the `detect-only` tag.
fn enforce(
    options: &PolicyOptions,
    mut verdict: Verdict,
    code: u16,
    reason: Cow<'static, str>,
    answer: Answer,
) -> Verdict {
    if options.block_mode {
        if verdict.is_allow() {
            verdict.action = match answer {
                Answer::Drop => Action::Drop,
                Answer::Close | Answer::CloseFragmented => Verdict::close(code, reason).action,
            };
            if answer == Answer::CloseFragmented {
                verdict
                    .reason_codes
                    .push(Cow::Borrowed("fragmented-message"));
            }
        }
    } else {
        verdict.add_tag(AuditTag::DetectOnly);
    }
    verdict
}

/// The close reason for a content finding: short, fixed, never an echo of the payload.
fn violation_reason(tag: AuditTag) -> Cow<'static, str> {
    Cow::Borrowed(match tag {
        AuditTag::Xss => "Policy violation: XSS detected",
        AuditTag::Sqli => "Policy violation: SQL injection detected",
        AuditTag::CmdInjection => "Policy violation: command injection detected",
        AuditTag::CustomPattern => "Policy violation: custom pattern matched",
        AuditTag::SchemaInvalid => "Policy violation: schema validation failed",
        AuditTag::RateLimit => "Policy violation: rate limit exceeded",
        _ => "Policy violation",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    fn job(options: PolicyOptions, text: &str) -> InspectJob {
        InspectJob {
            policy: Arc::new(Policy::compile(options).unwrap()),
            kind: MessageKind::Text,
            part: MessagePart::Complete,
            data: Bytes::copy_from_slice(text.as_bytes()),
            direction: Direction::ClientToServer,
            prior: Verdict::allow(),
            whole_message: true,
        }
    }

    #[test]
    fn xss_closes_with_1008_and_tag() {
        let verdict = evaluate(
            &job(PolicyOptions::default(), "<script>alert(1)</script>"),
            &mut PipelineScratch::default(),
        );
        assert_eq!(
            verdict.action,
            Action::Close {
                code: 1008,
                reason: "Policy violation: XSS detected".into()
            }
        );
        assert_eq!(verdict.tags, vec![AuditTag::Xss]);
        assert!(!verdict.rule_ids.is_empty());
    }

    #[test]
    fn block_action_drop_drops_whole_messages_and_closes_fragmented_ones() {
        let options = PolicyOptions {
            block_action: ViolationAction::Drop,
            ..PolicyOptions::default()
        };
        let mut whole = job(options, "<script>alert(1)</script>");
        let verdict = evaluate(&whole, &mut PipelineScratch::default());
        assert_eq!(verdict.action, Action::Drop);
        assert_eq!(verdict.tags, vec![AuditTag::Xss]);
        // A violation in a fragmented message: earlier fragments were forwarded, so close.
        whole.whole_message = false;
        whole.part = MessagePart::Partial;
        let verdict = evaluate(&whole, &mut PipelineScratch::default());
        assert!(matches!(verdict.action, Action::Close { code: 1008, .. }));
        assert!(verdict
            .reason_codes
            .iter()
            .any(|c| c == "fragmented-message"));
    }

    #[test]
    fn rate_limit_action_applies_to_rate_violations_only() {
        let options = PolicyOptions {
            rate_limit_action: ViolationAction::Drop,
            ..PolicyOptions::default()
        };
        let dropped = rate_violation(
            &options,
            true,
            AuditTag::RateLimit,
            "rate",
            ReasonCode::MessageRate,
        );
        assert_eq!(dropped.action, Action::Drop);
        assert_eq!(dropped.tags, vec![AuditTag::RateLimit]);
        let fragment = rate_violation(
            &options,
            false,
            AuditTag::RateLimit,
            "rate",
            ReasonCode::ByteRate,
        );
        assert!(matches!(fragment.action, Action::Close { code: 1008, .. }));
        // Content violations keep closing: block-action is `close`.
        let verdict = evaluate(
            &job(options, "<script>alert(1)</script>"),
            &mut PipelineScratch::default(),
        );
        assert!(matches!(verdict.action, Action::Close { code: 1008, .. }));
    }

    #[test]
    fn detect_only_allows_with_tags() {
        let options = PolicyOptions {
            block_mode: false,
            ..PolicyOptions::default()
        };
        let verdict = evaluate(
            &job(options, "<script>alert(1)</script>"),
            &mut PipelineScratch::default(),
        );
        assert_eq!(verdict.action, Action::Allow);
        assert_eq!(verdict.tags, vec![AuditTag::Xss, AuditTag::DetectOnly]);
    }

    #[test]
    fn clean_text_is_allowed_without_audit() {
        let verdict = evaluate(
            &job(PolicyOptions::default(), "Hi; how are you?"),
            &mut PipelineScratch::default(),
        );
        assert_eq!(verdict, Verdict::allow());
    }

    #[test]
    fn invalid_utf8_is_inspected_lossily() {
        let mut j = job(PolicyOptions::default(), "");
        j.data = Bytes::from_static(b"\xff\xfe<script>alert(1)</script>");
        let verdict = evaluate(&j, &mut PipelineScratch::default());
        assert!(!verdict.is_allow());
    }

    fn schema_options() -> PolicyOptions {
        let serde_json::Value::Object(schema) = serde_json::json!({
            "type": "object",
            "required": ["quantity"],
            "properties": {"quantity": {"type": "integer", "minimum": 1}}
        }) else {
            unreachable!()
        };
        PolicyOptions {
            json_schema: Some(crate::options::SchemaSource::Inline(schema)),
            msgpack_validation: true,
            ..PolicyOptions::default()
        }
    }

    #[test]
    fn schema_failure_closes_with_reason_codes() {
        let verdict = evaluate(
            &job(schema_options(), r#"{"quantity": 0}"#),
            &mut PipelineScratch::default(),
        );
        assert_eq!(
            verdict.action,
            Action::Close {
                code: 1008,
                reason: "Policy violation: schema validation failed".into()
            }
        );
        assert_eq!(verdict.tags, vec![AuditTag::SchemaInvalid]);
        assert_eq!(verdict.reason_codes, vec!["/quantity: minimum"]);
        let ok = evaluate(
            &job(schema_options(), r#"{"quantity": 3}"#),
            &mut PipelineScratch::default(),
        );
        assert_eq!(ok, Verdict::allow());
    }

    #[test]
    fn schema_failure_in_detect_only_is_allowed_and_tagged() {
        let options = PolicyOptions {
            block_mode: false,
            ..schema_options()
        };
        let verdict = evaluate(&job(options, "not json"), &mut PipelineScratch::default());
        assert_eq!(verdict.action, Action::Allow);
        assert_eq!(
            verdict.tags,
            vec![AuditTag::SchemaInvalid, AuditTag::DetectOnly]
        );
        assert_eq!(verdict.reason_codes, vec!["json: syntax"]);
    }

    #[test]
    fn windows_and_other_directions_are_not_validated() {
        let mut partial = job(schema_options(), r#"{"quantity": "#);
        partial.part = MessagePart::Partial;
        assert_eq!(
            evaluate(&partial, &mut PipelineScratch::default()),
            Verdict::allow()
        );
        let mut server = job(schema_options(), "not json");
        server.direction = Direction::ServerToClient;
        assert_eq!(
            evaluate(&server, &mut PipelineScratch::default()),
            Verdict::allow()
        );
    }

    #[test]
    fn msgpack_strings_reach_the_detectors() {
        // {"quantity": 1, "note": "<script>alert(1)</script>"}
        let mut data = vec![0x82, 0xa8];
        data.extend(b"quantity\x01\xa4note");
        data.push(0xa0 | 25);
        data.extend(b"<script>alert(1)</script>");
        let mut j = job(schema_options(), "");
        j.kind = MessageKind::Binary;
        j.data = Bytes::from(data);
        let verdict = evaluate(&j, &mut PipelineScratch::default());
        assert_eq!(verdict.tags, vec![AuditTag::Xss]);
        assert!(!verdict.is_allow());

        j.data = Bytes::from_static(b"\x81\xa8quantity\x00");
        let verdict = evaluate(&j, &mut PipelineScratch::default());
        assert_eq!(verdict.tags, vec![AuditTag::SchemaInvalid]);
        assert_eq!(verdict.reason_codes, vec!["/quantity: minimum"]);
    }
}
