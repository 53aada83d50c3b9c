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
/// Compiled program bytes all patterns together may use (each pattern compiles twice, text and
/// binary): a long list gets a smaller limit per pattern, so that `x{1000}` repeated cannot grow
/// memory with the list.
const TOTAL_PROGRAM_BUDGET: usize = 32 << 20;
/// Lazy DFA cache per pattern (and per thread that matches it), at most; shared out like
/// [`TOTAL_PROGRAM_BUDGET`]. A pattern whose DFA does not fit falls back to a slower engine.
const DFA_SIZE_LIMIT: usize = 2 << 20;
/// Lazy DFA bytes all patterns together may use, per matching thread.
const TOTAL_DFA_BUDGET: usize = 32 << 20;
/// Smallest share of either budget a pattern gets.
const MIN_SHARE: usize = 64 << 10;

/// Per-pattern (program, DFA) limits for a list of `count` patterns.
fn limits_for(count: usize) -> (usize, usize) {
    let share = |budget: usize, cap: usize| (budget / (2 * count.max(1))).clamp(MIN_SHARE, cap);
    (
        share(TOTAL_PROGRAM_BUDGET, PATTERN_SIZE_LIMIT),
        share(TOTAL_DFA_BUDGET, DFA_SIZE_LIMIT),
    )
}

/// Longest pattern source accepted. Parsing is linear but not free: a multi-megabyte pattern
/// pushed in a configure event would hold a runtime thread for seconds before the size limit
/// refused it; this refuses it at once.
pub const MAX_PATTERN_BYTES: usize = 64 * 1024;

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
        let (size_limit, dfa_limit) = limits_for(sources.len());
        for (index, source) in sources.iter().enumerate() {
            let bad = |message: String| InspectError::BadPattern {
                index,
                pattern: crate::util::cut(source, 80).into_owned(),
                // A syntax error quotes the whole pattern: keep log lines and replies bounded.
                message: crate::util::cut(&message, 512).into_owned(),
            };
            if source.len() > MAX_PATTERN_BYTES {
                return Err(bad(format!(
                    "the pattern is {} bytes long, over the {MAX_PATTERN_BYTES}-byte limit",
                    source.len()
                )));
            }
            let text = RegexBuilder::new(source)
                .case_insensitive(true)
                .size_limit(size_limit)
                .dfa_size_limit(dfa_limit)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            let binary = BytesRegexBuilder::new(source)
                .case_insensitive(true)
                .unicode(false)
                .size_limit(size_limit)
                .dfa_size_limit(dfa_limit)
                .build()
                .or_else(|_| {
                    // Patterns that need Unicode (e.g. `\p{L}`) still work on binary data, on the
                    // UTF-8 sequences they describe.
                    BytesRegexBuilder::new(source)
                        .case_insensitive(true)
                        .size_limit(size_limit)
                        .dfa_size_limit(dfa_limit)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_pattern_is_refused_at_once_with_a_bounded_message() {
        // A 5 MiB pattern pushed in a configure event took ~14 s (debug build) to reach the
        // compiled-size limit, holding a runtime thread meanwhile (fault test
        // huge_and_wrongly_typed_configure_values_are_rejected_naming_the_key).
        let huge = "a".repeat(5 * 1024 * 1024);
        let started = std::time::Instant::now();
        let error = CustomPatterns::compile(&["ok".into(), huge]).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let message = error.to_string();
        assert!(
            message.contains("#1") && message.contains("65536"),
            "{message}"
        );
        assert!(message.len() < 400, "{message}");
        // A syntax error quotes the pattern; the message stays bounded.
        let broken = format!("({}", "x".repeat(60 * 1024));
        let message = CustomPatterns::compile(&[broken]).unwrap_err().to_string();
        assert!(message.len() < 1024, "{} bytes", message.len());
        // A large real rule (an alternation of 500 words) is well within it.
        let words: Vec<String> = (0..500).map(|n| format!("word{n:04}")).collect();
        let rule = format!(r"\b(?:{})\b", words.join("|"));
        assert!(rule.len() < MAX_PATTERN_BYTES);
        assert!(CustomPatterns::compile(&[rule]).is_ok());
    }
}
