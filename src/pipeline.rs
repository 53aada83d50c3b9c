//! Turns an inspection job into a [`Verdict`]: runs the detectors and validators of the job's
//! policy over the message (or window) and applies block mode / detect-only. Also builds the
//! verdicts for size and rate violations, so that every decision follows the same rules.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;

use crate::inspect::{Finding, MessagePart, Scratch};
use crate::limits::reassembly::MessageKind;
use crate::model::{AuditTag, Direction, ReasonCode, Verdict, CLOSE_POLICY_VIOLATION};
use crate::options::PolicyOptions;
use crate::policy::Policy;

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
                invalid = policy.validator.check_text(&job.data).err();
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
            if job.part == MessagePart::Complete && policy.validator.validates_msgpack() {
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
        verdict.reason_codes.extend(invalid.reason_codes);
    }
    enforce(
        &policy.options,
        verdict,
        CLOSE_POLICY_VIOLATION,
        violation_reason(first),
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
    let mut verdict = Verdict::allow();
    verdict.add_tag(tag);
    verdict.add_reason(reason_code);
    enforce(options, verdict, code, reason)
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

/// Block mode closes the connection; detect-only allows and adds the `detect-only` tag.
fn enforce(
    options: &PolicyOptions,
    mut verdict: Verdict,
    code: u16,
    reason: Cow<'static, str>,
) -> Verdict {
    if options.block_mode {
        if verdict.is_allow() {
            let tags = std::mem::take(&mut verdict.tags);
            let rule_ids = std::mem::take(&mut verdict.rule_ids);
            let reason_codes = std::mem::take(&mut verdict.reason_codes);
            verdict = Verdict {
                tags,
                rule_ids,
                reason_codes,
                uninspected: verdict.uninspected,
                ..Verdict::close(code, reason)
            };
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
    use crate::model::Action;
    use crate::policy::Policy;

    fn job(options: PolicyOptions, text: &str) -> InspectJob {
        InspectJob {
            policy: Arc::new(Policy::compile(options).unwrap()),
            kind: MessageKind::Text,
            part: MessagePart::Complete,
            data: Bytes::copy_from_slice(text.as_bytes()),
            direction: Direction::ClientToServer,
            prior: Verdict::allow(),
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
