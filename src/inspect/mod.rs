//! Content inspection: turns a message (or a window of an unfinished fragmented message) into
//! [`Finding`]s. Knows nothing of protocols, actors or connection state; the only inputs are bytes
//! and the [`DetectionSettings`], the only output is the findings list.
//!
//! The stage is replaceable as a whole: the rest of the agent uses only [`Inspector`],
//! [`Scratch`], [`MessagePart`] and [`Finding`].

mod custom;
mod detectors;

use std::borrow::Cow;

use crate::model::AuditTag;

pub use custom::CustomPatterns;

/// Which detectors run, and the operator's extra patterns.
#[derive(Debug, Clone, Copy)]
pub struct DetectionSettings<'a> {
    /// Run the XSS detector.
    pub xss: bool,
    /// Run the SQL injection detector.
    pub sqli: bool,
    /// Run the command injection detector.
    pub command_injection: bool,
    /// Custom regular expressions (rule ids `custom-0`, `custom-1`, ...).
    pub custom_patterns: &'a [String],
}

/// A custom pattern that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The pattern does not compile (or is too large for the regex size limit).
    #[error("custom pattern #{index} `{pattern}` is not a valid regular expression: {message}")]
    BadPattern {
        /// 0-based position in the list.
        index: usize,
        /// The pattern, cut for display.
        pattern: String,
        /// The regex engine's explanation.
        message: String,
    },
}

/// Whether the text is a whole message or a window of one still being reassembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagePart {
    /// The complete message: every view (JSON-aware ones included) is inspected.
    Complete,
    /// The tail of an unfinished fragmented message: only views that make sense on a partial
    /// text are inspected; the complete message is inspected again when it ends.
    Partial,
}

/// One detection: the class tag and the rule that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `ws-xss`, `ws-sqli`, `ws-cmd-injection` or `ws-custom-pattern`.
    pub tag: AuditTag,
    /// Stable rule id (`xss-script-tag`, `custom-2`, ...).
    pub rule_id: Cow<'static, str>,
}

/// Reusable buffers for one inspecting thread (a detector actor owns one), so that normalization
/// does not allocate per message once warmed up.
#[derive(Debug, Default)]
pub struct Scratch {
    buffer: String,
}

/// The compiled detectors for one policy. Immutable and shared by every detector actor.
#[derive(Debug)]
pub struct Inspector {
    xss: bool,
    sqli: bool,
    command_injection: bool,
    custom: CustomPatterns,
}

impl Inspector {
    /// Compiles the detectors; fails on the first custom pattern that does not compile.
    pub fn new(settings: &DetectionSettings<'_>) -> Result<Self, InspectError> {
        Ok(Inspector {
            xss: settings.xss,
            sqli: settings.sqli,
            command_injection: settings.command_injection,
            custom: CustomPatterns::compile(settings.custom_patterns)?,
        })
    }

    /// True when no detector and no pattern is enabled (inspection can be skipped entirely).
    pub fn is_empty(&self) -> bool {
        !(self.xss || self.sqli || self.command_injection) && self.custom.is_empty()
    }

    /// Inspects a text message (lossily decoded when it was not valid UTF-8).
    pub fn inspect_text(
        &self,
        text: &str,
        part: MessagePart,
        scratch: &mut Scratch,
        findings: &mut Vec<Finding>,
    ) {
        let _ = part;
        let lowered = &mut scratch.buffer;
        lowered.clear();
        lowered.extend(text.chars().map(|c| c.to_ascii_lowercase()));
        if self.xss {
            detectors::xss(lowered, findings);
        }
        if self.sqli {
            detectors::sqli(lowered, findings);
        }
        if self.command_injection {
            detectors::command_injection(lowered, findings);
        }
        self.custom.find_text(text, findings);
    }

    /// Inspects a binary message (only called with `--inspect-binary`). Must not run Unicode-aware
    /// regular expressions over the bytes.
    pub fn inspect_binary(
        &self,
        data: &[u8],
        part: MessagePart,
        scratch: &mut Scratch,
        findings: &mut Vec<Finding>,
    ) {
        let text = String::from_utf8_lossy(data);
        let lowered_len = findings.len();
        if self.xss || self.sqli || self.command_injection {
            let custom = CustomPatterns::default();
            let only_builtin = Inspector {
                xss: self.xss,
                sqli: self.sqli,
                command_injection: self.command_injection,
                custom,
            };
            only_builtin.inspect_text(&text, part, scratch, findings);
        }
        let _ = lowered_len;
        self.custom.find_binary(data, findings);
    }
}
