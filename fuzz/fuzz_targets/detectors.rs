//! Every content detector through `inspect::Inspector` as the detector actors call it: XSS, SQL
//! injection, command injection and custom patterns, on text and binary messages, whole and
//! partial.
//!
//! Checked: no panic or stall; a detector's scratch buffers carry nothing from one message to the
//! next (a reused scratch gives the same findings as a fresh one); and findings do not change when
//! the text is written in upper case with characters the fold pass drops (NUL and other controls,
//! DEL, zero-width spaces, byte-order marks) inserted between its characters, so none of those
//! tricks hides a payload from the built-in detectors.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sentinel_ws_agent::inspect::{DetectionSettings, Finding, Inspector, MessagePart, Scratch};

const PATTERNS: [&str; 3] = [r"evil[0-9]+", r"\bunion\b.*\bselect\b", r"\p{Greek}{3}"];

fn inspectors() -> &'static (Inspector, Inspector) {
    static INSPECTORS: OnceLock<(Inspector, Inspector)> = OnceLock::new();
    INSPECTORS.get_or_init(|| {
        let patterns: Vec<String> = PATTERNS.iter().map(|p| p.to_string()).collect();
        let all = Inspector::new(&DetectionSettings {
            xss: true,
            sqli: true,
            command_injection: true,
            custom_patterns: &patterns,
        })
        .expect("patterns compile");
        let builtin = Inspector::new(&DetectionSettings {
            xss: true,
            sqli: true,
            command_injection: true,
            custom_patterns: &[],
        })
        .expect("no patterns");
        (all, builtin)
    })
}

/// Characters the fold pass removes.
const DROPPED: [&str; 7] = [
    "\0", "\u{1}", "\u{1b}", "\u{7f}", "\u{200b}", "\u{feff}", "\u{2060}",
];

/// `text` upper-cased with characters the fold pass drops inserted where `mask` says. A
/// terminal sequence (ESC, `[`, digits, `;`, `?`, a letter) is dropped whole, so nothing is
/// inserted inside one and no ESC right before a `[`.
fn disguised(text: &str, mask: &[u8]) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut chars = text.chars().enumerate().peekable();
    // 1: just after an ESC; 2: inside the parameters of `ESC [`.
    let mut escape = 0u8;
    while let Some((i, c)) = chars.next() {
        out.push(c.to_ascii_uppercase());
        escape = match (escape, c) {
            (_, '\u{1b}') => 1,
            (1, '[') | (2, '0'..='9' | ';' | '?') => 2,
            _ => 0,
        };
        let m = if mask.is_empty() {
            0
        } else {
            mask[i % mask.len()]
        };
        let inserted = DROPPED[usize::from(m) % DROPPED.len()];
        let before_bracket = chars.peek().is_some_and(|&(_, next)| next == '[');
        if m & 0x80 != 0 && escape == 0 && !(inserted == "\u{1b}" && before_bracket) {
            out.push_str(inserted);
        }
    }
    out
}

fn text_findings(
    inspector: &Inspector,
    text: &str,
    part: MessagePart,
    scratch: &mut Scratch,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    inspector.inspect_text(text, part, scratch, &mut findings);
    findings
}

fuzz_target!(|data: &[u8]| {
    let (all, builtin) = inspectors();
    let split = data
        .first()
        .map_or(0, |&b| usize::from(b) % 16)
        .min(data.len());
    let (mask, data) = data.split_at(split);
    let text = String::from_utf8_lossy(data);
    // A scratch that inspected something else first, as a detector actor's does.
    let mut dirty = Scratch::default();
    for part in [MessagePart::Complete, MessagePart::Partial] {
        let fresh = text_findings(all, &text, part, &mut Scratch::default());
        let _ = text_findings(
            all,
            "{\"a\":\"%3cscript%3e\",\"b\":[1,2]} x",
            MessagePart::Complete,
            &mut dirty,
        );
        assert_eq!(
            fresh,
            text_findings(all, &text, part, &mut dirty),
            "scratch leaked state"
        );

        let mut binary = Vec::new();
        all.inspect_binary(data, part, &mut Scratch::default(), &mut binary);
        let mut again = Vec::new();
        all.inspect_binary(data, part, &mut dirty, &mut again);
        assert_eq!(binary, again, "scratch leaked state (binary)");
    }

    let plain = text_findings(
        builtin,
        &text,
        MessagePart::Partial,
        &mut Scratch::default(),
    );
    let variant = disguised(&text, mask);
    let hidden = text_findings(
        builtin,
        &variant,
        MessagePart::Partial,
        &mut Scratch::default(),
    );
    assert_eq!(plain, hidden, "findings changed for {variant:?}");
});
