//! The operator's custom patterns: compiled once, matched on text with Unicode-aware regexes and on
//! binary data with byte regexes whose Unicode classes are off.

use std::borrow::Cow;

use regex::bytes::{Regex as BytesRegex, RegexBuilder as BytesRegexBuilder};
use regex::{Regex, RegexBuilder};

use super::{Finding, InspectError};
use crate::model::AuditTag;

/// Compiled program size limit per pattern: large enough for real rules, small enough that a
/// pathological pattern is rejected at start-up instead of eating memory.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// One compiled pattern.
#[derive(Debug)]
struct Pattern {
    rule_id: Cow<'static, str>,
    text: Regex,
    binary: BytesRegex,
}

/// The compiled custom pattern list.
#[derive(Debug, Default)]
pub struct CustomPatterns {
    patterns: Vec<Pattern>,
}

impl CustomPatterns {
    /// Compiles every pattern (case-insensitive); the first failure is reported with its index.
    pub fn compile(sources: &[String]) -> Result<Self, InspectError> {
        let mut patterns = Vec::with_capacity(sources.len());
        for (index, source) in sources.iter().enumerate() {
            let bad = |message: String| InspectError::BadPattern {
                index,
                pattern: crate::util::cut(source, 80).into_owned(),
                message,
            };
            let text = RegexBuilder::new(source)
                .case_insensitive(true)
                .size_limit(PATTERN_SIZE_LIMIT)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            let binary = BytesRegexBuilder::new(source)
                .case_insensitive(true)
                .unicode(false)
                .size_limit(PATTERN_SIZE_LIMIT)
                .build()
                .or_else(|_| {
                    // Patterns that need Unicode (e.g. `\p{L}`) still work on binary data, on the
                    // UTF-8 sequences they describe.
                    BytesRegexBuilder::new(source)
                        .case_insensitive(true)
                        .size_limit(PATTERN_SIZE_LIMIT)
                        .build()
                })
                .map_err(|e| bad(e.to_string()))?;
            patterns.push(Pattern {
                rule_id: Cow::Owned(format!("custom-{index}")),
                text,
                binary,
            });
        }
        Ok(CustomPatterns { patterns })
    }

    /// True when there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Adds a finding for every pattern that matches `text`.
    pub fn find_text(&self, text: &str, findings: &mut Vec<Finding>) {
        for pattern in &self.patterns {
            if pattern.text.is_match(text) {
                findings.push(Finding {
                    tag: AuditTag::CustomPattern,
                    rule_id: pattern.rule_id.clone(),
                });
            }
        }
    }

    /// Adds a finding for every pattern that matches `data`.
    pub fn find_binary(&self, data: &[u8], findings: &mut Vec<Finding>) {
        for pattern in &self.patterns {
            if pattern.binary.is_match(data) {
                findings.push(Finding {
                    tag: AuditTag::CustomPattern,
                    rule_id: pattern.rule_id.clone(),
                });
            }
        }
    }
}
