//! Content inspection: turns a message (or a window of an unfinished fragmented message) into
//! [`Finding`]s. Knows nothing of protocols, actors or connection state; the only inputs are bytes
//! and the [`DetectionSettings`], the only output is the findings list.
//!
//! The stage is replaceable as a whole: the rest of the agent uses only [`Inspector`],
//! [`Scratch`], [`MessagePart`] and [`Finding`].

mod cmdi;
mod custom;
mod json_views;
pub mod lossy;
mod normalize;
pub mod rules;
mod search;
mod sqli;
mod wordset;
mod xss;

use std::borrow::Cow;

use crate::model::AuditTag;

use json_views::JsonStrings;
use normalize::Marks;
use rules::RuleFilter;

pub use custom::CustomPatterns;

/// The inspection stage's internal layers, one by one, for the fuzz targets in `fuzz/` (which
/// check each layer's own guarantees: views never grow, JSON views see what a JSON parser sees).
/// Not a stable interface.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::json_views::JsonStrings;
    pub use super::normalize::{decode, fold, has_decodable, marks, Marks};

    /// The XSS detector over a folded view.
    pub fn xss(view: &[u8]) -> Option<&'static str> {
        super::xss::detect(view, marks(view), super::RuleFilter::ALL)
    }

    /// The SQL injection detector over a folded view.
    pub fn sqli(view: &[u8]) -> Option<&'static str> {
        super::sqli::detect(view, marks(view), super::RuleFilter::ALL)
    }

    /// The command injection detector over a folded view.
    pub fn cmdi(view: &[u8]) -> Option<&'static str> {
        super::cmdi::detect(view, marks(view), super::RuleFilter::ALL)
    }
}

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

/// Units larger than this get two views (raw and fully decoded) instead of one per layer.
const LARGE_UNIT: usize = 64 * 1024;

/// Decode layers peeled from large units (double encoding, not triple).
const LARGE_DECODE_ROUNDS: usize = 2;

/// Decode layers applied after the first fold (so up to four views of one text).
const MAX_DECODE_ROUNDS: usize = 3;

/// Reusable buffers for one inspecting thread (a detector actor owns one), so that normalization
/// does not allocate per message once warmed up.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Decoded JSON strings of the current message.
    json: JsonStrings,
    /// The current view.
    view: Vec<u8>,
    /// The next view being built.
    next: Vec<u8>,
    /// Decoded bytes before folding.
    decoded: Vec<u8>,
}

/// Which detector classes still have to run on the current message.
#[derive(Clone, Copy)]
struct Pending {
    xss: bool,
    sqli: bool,
    cmdi: bool,
}

impl Pending {
    /// Only the XSS detector (the raw text of a JSON message).
    const XSS_ONLY: Pending = Pending {
        xss: true,
        sqli: false,
        cmdi: false,
    };
    /// Only the command detector (a lone word in a JSON string).
    const CMDI_ONLY: Pending = Pending {
        xss: false,
        sqli: false,
        cmdi: true,
    };

    fn any(self) -> bool {
        self.xss || self.sqli || self.cmdi
    }
}

/// The compiled detectors for one policy. Immutable and shared by every detector actor.
#[derive(Debug)]
pub struct Inspector {
    xss: bool,
    sqli: bool,
    command_injection: bool,
    custom: CustomPatterns,
    /// Rules switched off (only the corpus evaluation switches any off).
    rules_off: Vec<&'static str>,
}

impl Inspector {
    /// Compiles the detectors; fails on the first custom pattern that does not compile.
    pub fn new(settings: &DetectionSettings<'_>) -> Result<Self, InspectError> {
        Ok(Inspector {
            xss: settings.xss,
            sqli: settings.sqli,
            command_injection: settings.command_injection,
            custom: CustomPatterns::compile(settings.custom_patterns)?,
            rules_off: Vec::new(),
        })
    }

    /// The same detectors with the built-in rules in `off` switched off: for measuring what the
    /// other rules catch (the corpus evaluation's leave-one-source-out view), never for serving.
    pub fn with_rules_off(mut self, off: Vec<&'static str>) -> Self {
        self.rules_off = off;
        self
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
        let rules = RuleFilter::without(&self.rules_off);
        self.with_pending(|pending| {
            inspect_message(text.as_bytes(), part, rules, pending, scratch, findings);
        });
        self.custom.find_text(text, findings);
    }

    /// Inspects a binary message (only called with `--inspect-binary`). Must not run Unicode-aware
    /// regular expressions over the bytes.
    ///
    /// The built-in detectors read the runs of text in the message (see [`text_runs`]): attack
    /// text inside a binary protocol is a run of printable bytes (a string field, a header, a
    /// JSON document in an envelope), and the bytes between runs carry nothing the text
    /// detectors could read. A message that is text throughout is inspected as a text message.
    pub fn inspect_binary(
        &self,
        data: &[u8],
        part: MessagePart,
        scratch: &mut Scratch,
        findings: &mut Vec<Finding>,
    ) {
        let rules = RuleFilter::without(&self.rules_off);
        self.with_pending(|pending| {
            text_runs(data, |run| {
                inspect_message(run, part, rules, pending, scratch, findings);
                pending.any()
            });
        });
        self.custom.find_binary(data, findings);
    }

    /// Runs `f` with the detector classes this inspector runs, unless it runs none.
    fn with_pending(&self, f: impl FnOnce(&mut Pending)) {
        let mut pending = Pending {
            xss: self.xss,
            sqli: self.sqli,
            cmdi: self.command_injection,
        };
        if pending.any() {
            f(&mut pending);
        }
    }
}

/// Shortest run of text in a binary message that the detectors read (see docs/detection.md,
/// "Binary messages"). Each run is read as a value of its own, where the start of a value is
/// the injection point, so the length trades short payloads for false positives on random
/// and compressed data, which has a run of printable ASCII at least `k` long at about one
/// position in 0.37^-k: measured over 150 MB of random, gzip and image data in 64 KiB
/// messages, runs of 8 or more flagged 11% of the messages, 12 or more 1%, 16 or more none.
const MIN_TEXT_RUN: usize = 16;

/// Calls `f` with every run of text in `data` at least [`MIN_TEXT_RUN`] long (all of `data` when
/// it is text throughout, whatever its length), until `f` returns false. Text is printable ASCII,
/// tab, line feed, carriage return and well-formed multi-byte UTF-8 (so fullwidth and other
/// forms the fold pass rewrites stay in their run); anything else ends a run.
fn text_runs(data: &[u8], mut f: impl FnMut(&[u8]) -> bool) {
    let n = data.len();
    if text_prefix(data) == n {
        f(data);
        return;
    }
    let mut start = 0;
    while start + MIN_TEXT_RUN <= n {
        // A byte that is never text in the next MIN_TEXT_RUN bytes rules out every run that
        // starts before it (random data has one in 95% of such windows): look from the end of
        // the window back, and start again after it.
        if let Some(k) = data[start..start + MIN_TEXT_RUN]
            .iter()
            .rposition(|&b| TEXT_CLASS[usize::from(b)] == NEVER)
        {
            start += k + 1;
            continue;
        }
        let end = start + text_prefix(&data[start..]);
        if end - start >= MIN_TEXT_RUN && !f(&data[start..end]) {
            return;
        }
        start = end + 1;
    }
}

/// [`TEXT_CLASS`]: a byte that is never part of text.
const NEVER: u8 = 0;
/// [`TEXT_CLASS`]: a byte that is text on its own.
const ASCII: u8 = 1;
/// [`TEXT_CLASS`]: a byte that is text only inside a well-formed multi-byte UTF-8 sequence.
const MULTI: u8 = 2;

/// Per byte: printable ASCII, tab, line feed and carriage return are text; the other controls,
/// DEL and the bytes UTF-8 never uses are not; the rest may be part of a UTF-8 sequence.
static TEXT_CLASS: [u8; 256] = {
    let mut t = [MULTI; 256];
    let mut b = 0;
    while b < 0x80 {
        t[b] = if (b >= 0x20 && b < 0x7f) || b == 0x09 || b == 0x0a || b == 0x0d {
            ASCII
        } else {
            NEVER
        };
        b += 1;
    }
    t[0xc0] = NEVER;
    t[0xc1] = NEVER;
    let mut b = 0xf5;
    while b < 0x100 {
        t[b] = NEVER;
        b += 1;
    }
    t
};

/// How many bytes at the start of `s` are text.
fn text_prefix(s: &[u8]) -> usize {
    let mut i = 0;
    while i < s.len() {
        match TEXT_CLASS[usize::from(s[i])] {
            ASCII => i += 1,
            MULTI => match utf8_width(&s[i..]) {
                0 => break,
                w => i += w,
            },
            _ => break,
        }
    }
    i
}

/// The length of the well-formed multi-byte UTF-8 sequence at the start of `s`, or 0.
fn utf8_width(s: &[u8]) -> usize {
    let cont = |k: usize| s.get(k).is_some_and(|&c| c & 0xc0 == 0x80);
    let second = s.get(1).copied().unwrap_or(0);
    match s[0] {
        0xc2..=0xdf if cont(1) => 2,
        // No overlong forms, no surrogates.
        0xe0 if (0xa0..=0xbf).contains(&second) && cont(2) => 3,
        0xe1..=0xec | 0xee | 0xef if cont(1) && cont(2) => 3,
        0xed if (0x80..=0x9f).contains(&second) && cont(2) => 3,
        0xf0 if (0x90..=0xbf).contains(&second) && cont(2) && cont(3) => 4,
        0xf1..=0xf3 if cont(1) && cont(2) && cont(3) => 4,
        0xf4 if (0x80..=0x8f).contains(&second) && cont(2) && cont(3) => 4,
        _ => 0,
    }
}

/// Runs the detectors still `pending` over every unit and view of one message (or one run of
/// text in a binary message).
fn inspect_message(
    data: &[u8],
    part: MessagePart,
    rules: RuleFilter<'_>,
    pending: &mut Pending,
    scratch: &mut Scratch,
    findings: &mut Vec<Finding>,
) {
    let Scratch {
        json,
        view,
        next,
        decoded,
    } = scratch;
    let is_json = part == MessagePart::Complete && json.extract(data);
    if !is_json {
        inspect_unit(data, rules, pending, view, next, decoded, findings);
        json.clear();
        return;
    }
    // The SQL and shell detectors read a message as one value, so they see the decoded strings
    // only; so does the XSS detector, and the raw JSON text afterwards when markup could
    // straddle fields (see [`could_straddle`]).
    let mut seen = Marks::default();
    // A lone command word is a probe when it is what a message carries (`{"type":
    // "message", "text": "whoami"}`); among the many values of a record it is data (a
    // country code `ID`, a tag `id`, a field list).
    let values = json.keys.iter().filter(|&&key| !key).count();
    let lone_words_judged = values <= LONE_WORD_MAX_VALUES;
    for k in 0..json.spans.len() {
        if !pending.any() {
            break;
        }
        let (a, b) = json.spans[k];
        let unit = json.buf.get(a..b).unwrap_or(&[]);
        if pending.sqli && json.keys.get(k) == Some(&true) {
            // A NoSQL query operator as a key (`{"user": {"$ne": null}}`).
            if let Some(rule) = sqli::json_key(unit, rules) {
                pending.sqli = false;
                findings.push(finding(AuditTag::Sqli, rule));
            }
        }
        if !plain_token(unit) {
            seen = seen.union(inspect_unit(
                unit, rules, pending, view, next, decoded, findings,
            ));
        } else if pending.cmdi
            && lone_words_judged
            && json.keys.get(k) != Some(&true)
            && cmdi::is_command_word(unit)
        {
            // One word can still be a whole command line (`whoami`, `systeminfo`);
            // nothing else any detector looks for fits in a plain token. A key is a
            // field name (`"id"`, `"type"`), not a value an application runs.
            let mut only_cmdi = Pending::CMDI_ONLY;
            inspect_unit(unit, rules, &mut only_cmdi, view, next, decoded, findings);
            pending.cmdi &= only_cmdi.cmdi;
        }
    }
    if pending.xss && json.spans.len() > 1 && could_straddle(seen) {
        let mut raw = Pending::XSS_ONLY;
        inspect_unit(data, rules, &mut raw, view, next, decoded, findings);
        pending.xss &= raw.xss;
    }
    json.clear();
}

/// Whether markup or a template may run across the strings of a JSON message, once a page
/// template concatenates its fields: some view of some string opened a tag (`<`, or the 7-bit
/// `<` 0xbc) or a template block (`{`). Without one, the raw document holds nothing the strings
/// did not (its own quotes, colons and braces are JSON's), so it is not scanned again.
fn could_straddle(seen: Marks) -> bool {
    seen.any(STRADDLE_OPENERS)
}

/// See [`could_straddle`].
const STRADDLE_OPENERS: Marks = Marks::of(b"<{\xbc");

/// Most string values a JSON message may have for a lone command word in one of them to be
/// judged as a command line (a message envelope carries one or two besides the text).
const LONE_WORD_MAX_VALUES: usize = 3;

/// A JSON string that is one plain token (`"type"`, `"message"`, `"42"`, `"en-gb"`): nothing the
/// markup or SQL detectors look for can be in it, so only the shell detector reads it (a lone
/// command). A dot is not plain: `document.cookie` is a script's member access.
fn plain_token(unit: &[u8]) -> bool {
    unit.len() <= 64
        && unit
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// Folds `unit`, runs the detectors, then peels decoding layers while they change something.
/// Returns the marks of every view the detectors read.
fn inspect_unit(
    unit: &[u8],
    rules: RuleFilter<'_>,
    pending: &mut Pending,
    view: &mut Vec<u8>,
    next: &mut Vec<u8>,
    decoded: &mut Vec<u8>,
    findings: &mut Vec<Finding>,
) -> Marks {
    view.clear();
    let mut marks = normalize::fold(unit, view);
    let mut seen = marks;
    run_detectors(view, marks, rules, pending, findings);
    // `+` is a space only in form-encoded text, which has no literal spaces.
    let plus_is_space = !marks.space() && marks.plus();
    // Large texts get the fully decoded view only, not every intermediate one: the detectors
    // then run at most twice over them.
    if unit.len() > LARGE_UNIT {
        // Peel every layer first (decoding reads escapes in either case), fold once, inspect once.
        let mut any = false;
        for _ in 0..LARGE_DECODE_ROUNDS {
            if !pending.any() || !normalize::has_decodable(view, marks, plus_is_space) {
                break;
            }
            decoded.clear();
            if !normalize::decode(view, plus_is_space, decoded) {
                break;
            }
            any = true;
            std::mem::swap(view, decoded);
            marks = normalize::marks(view);
        }
        if any {
            next.clear();
            let marks = normalize::fold(view, next);
            seen = seen.union(marks);
            run_detectors(next, marks, rules, pending, findings);
        }
        return seen;
    }
    let mut plus_is_space = plus_is_space;
    for round in 0..MAX_DECODE_ROUNDS {
        // A layer that decoded to form encoding (`%2B` for `+`, no spaces) is form-encoded too.
        plus_is_space |= round > 0 && !marks.space() && marks.plus();
        if !pending.any() || !normalize::has_decodable(view, marks, plus_is_space) {
            break;
        }
        decoded.clear();
        if !normalize::decode(view, plus_is_space, decoded) {
            break;
        }
        next.clear();
        marks = normalize::fold(decoded, next);
        std::mem::swap(view, next);
        seen = seen.union(marks);
        run_detectors(view, marks, rules, pending, findings);
    }
    seen
}

/// Runs the pending detectors over one view; `marks` are the view's [`normalize::Marks`].
fn run_detectors(
    view: &[u8],
    marks: normalize::Marks,
    rules: RuleFilter<'_>,
    pending: &mut Pending,
    findings: &mut Vec<Finding>,
) {
    if pending.xss {
        if let Some(rule) = xss::detect(view, marks, rules) {
            pending.xss = false;
            findings.push(finding(AuditTag::Xss, rule));
        }
    }
    if pending.sqli {
        if let Some(rule) = sqli::detect(view, marks, rules) {
            pending.sqli = false;
            findings.push(finding(AuditTag::Sqli, rule));
        }
    }
    if pending.cmdi {
        if let Some(rule) = cmdi::detect(view, marks, rules) {
            pending.cmdi = false;
            findings.push(finding(AuditTag::CmdInjection, rule));
        }
    }
}

fn finding(tag: AuditTag, rule: &'static str) -> Finding {
    Finding {
        tag,
        rule_id: Cow::Borrowed(rule),
    }
}

#[cfg(test)]
mod tests;
