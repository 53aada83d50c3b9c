//! Cross-site scripting and server-side template injection detection.
//!
//! The model: a message is text an application may paste into an HTML page, into an attribute
//! value, into a JavaScript string, or into a server-side template. An attack is text that, in
//! one of those contexts, makes the browser (or the template engine) run code. So the detector
//! reads the languages involved and judges shapes, not known payloads:
//!
//! - markup ([`scanner`], [`rules::markup`]): a small HTML tokenizer splits tags, attribute names
//!   and values the way browsers do; a tag that runs active content, an event handler, a
//!   script-bearing URI or style, a declaration that defines entities, is an attack;
//! - URIs and CSS ([`rules::uri`], [`rules::css`]): `javascript:` and document-carrying `data:`
//!   schemes, disguised hosts, CSS expressions and bindings;
//! - script without markup ([`js`], [`rules::script`]): a JavaScript sink (a function that runs
//!   code or proves execution, an object that leaks the session) reached where only an injection
//!   puts it: after a string break-out (`";alert(1)//`), as the whole message, assigned, or
//!   looked up by a computed name;
//! - templates ([`rules::template`]): a `{{ }}`, `${ }`, `#{ }`, `{% %}` or `<% %>` block that
//!   reaches objects, calls or arithmetic probes (a bare `{{name}}` placeholder is not one).
//!
//! The input is a folded view (ASCII lowercase). Scanning is linear: every tag is parsed once, the
//! scan resumes where the tag ended, and a search for a closing quote that failed is remembered.
//! Bytes no rule starts from are skipped in bulk ([`TRIGGER`]).

/// Reports `$id` from the enclosing function when the rule filter allows it; otherwise the scan
/// goes on to the other rules.
macro_rules! fire {
    ($rules:expr, $id:expr) => {
        if let Some(r) = $rules.fire($id) {
            return Some(r);
        }
    };
}

mod js;
mod rules;
mod scanner;
#[cfg(test)]
mod tests;
mod text;
mod vocab;

use super::normalize::Marks;
use super::rules::{RuleFilter, RuleInfo};
use crate::model::AuditTag;
use js::new_activex;
use scanner::{Jump, Scanner};
use text::byte_table;

/// Every rule this detector reports (see [`super::rules`]). These rules were tuned on the
/// development corpus's sources of this class.
pub(super) static RULES: &[RuleInfo] = &[
    RuleInfo::written_for(
        "xss-active-tag",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-attribute-breakout",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-base-tag",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-charset",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-context-breakout",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-css-expression",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-dangerous-uri",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-data-binding",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-data-uri",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-event-handler",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-foreign-content",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-html-import",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-javascript-uri",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-js-breakout",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-js-entity",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-js-sink",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-meta-refresh",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-obfuscated-url",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-remote-stylesheet",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-split-keyword",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-srcdoc",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-svg-animation",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-template-injection",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    RuleInfo::written_for(
        "xss-xml-entity",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
    // Server-side templates: the languages' own shapes (the and the brief's examples,
    // no list's misses).
    RuleInfo::language("xss-template-expression", AuditTag::Xss),
    RuleInfo::language("xss-template-statement", AuditTag::Xss),
    // Written while reading the CRS regression tests' misses (rules 941xxx).
    RuleInfo::written_for("xss-attribute-injection", AuditTag::Xss, &["crs-941"]),
    RuleInfo::written_for("xss-bracket-script", AuditTag::Xss, &["crs-941"]),
    RuleInfo::written_for("xss-computed-global", AuditTag::Xss, &["crs-941"]),
    RuleInfo::written_for("xss-css-script-url", AuditTag::Xss, &["crs-941"]),
    RuleInfo::written_for("xss-dom-access", AuditTag::Xss, &["crs-941"]),
    RuleInfo::written_for("xss-dom-write", AuditTag::Xss, &["crs-941"]),
    RuleInfo::written_for("xss-function-constructor", AuditTag::Xss, &["crs-941"]),
    RuleInfo::written_for("xss-glued-tag", AuditTag::Xss, &["crs-941"]),
    RuleInfo::written_for("xss-module-import", AuditTag::Xss, &["crs-941"]),
    RuleInfo::written_for("xss-obfuscated-scheme", AuditTag::Xss, &["crs-941"]),
    RuleInfo::written_for("xss-open-handler", AuditTag::Xss, &["crs-941"]),
    RuleInfo::written_for("xss-script-link", AuditTag::Xss, &["crs-941"]),
    RuleInfo::written_for("xss-server-side-include", AuditTag::Xss, &["crs-941"]),
    RuleInfo::written_for("xss-spaced-tag", AuditTag::Xss, &["crs-941"]),
    RuleInfo::written_for("xss-style-escape", AuditTag::Xss, &["crs-941"]),
    RuleInfo::written_for("xss-template-call", AuditTag::Xss, &["crs-941"]),
    RuleInfo::written_for(
        "xss-xml-processing",
        AuditTag::Xss,
        &[
            "payloadbox-xss",
            "libinjection-data-xss",
            "patt-xss",
            "fuzzdb-xss",
        ],
    ),
];

type Rule = &'static str;

/// Bytes the scanner's rules start from (everything else is skipped in bulk).
static TRIGGER: [bool; 256] = byte_table(b"<:\"'`{$#*=(,-oapcen");

/// [`TRIGGER`] without the letters. The rules that start from a letter need a call (`(`, a
/// template literal's `` ` ``) or an attribute (`=`), except `new ActiveXObject`; a view without
/// those is scanned from punctuation only, which in prose is a few bytes in a hundred.
static TRIGGER_PUNCTUATION: [bool; 256] = byte_table(b"<:\"'`{$#*=(,-");

/// What the letter rules need (one of them).
const LETTER_RULE_MARKS: Marks = Marks::of(b"(`=");

/// The bytes of [`TRIGGER_PUNCTUATION`] (0xbc included).
const PUNCTUATION_TRIGGERS: &[u8] = b"<:\"'`{$#*=(,-\xbc";

/// How the scanner finds the next byte a rule starts from: in a view scanned from punctuation
/// only, the marks say which trigger bytes the view holds at all; when they are three or fewer
/// (prose: a comma, a dash), `memchr` finds them instead of a table test at every byte.
fn jump_for(letters: bool, marks: Marks) -> Jump {
    if letters {
        return Jump::Table;
    }
    let mut present = [0u8; 3];
    let mut count = 0;
    for &b in PUNCTUATION_TRIGGERS {
        if marks.holds(b) {
            if count == present.len() {
                return Jump::Table;
            }
            present[count] = b;
            count += 1;
        }
    }
    match count {
        0 => Jump::Nowhere,
        1 => Jump::One(present[0]),
        2 => Jump::Two(present[0], present[1]),
        _ => Jump::Three(present[0], present[1], present[2]),
    }
}

/// The first XSS rule that fires on `view` (whose marks are `marks`) among those `rules`
/// allows.
pub fn detect(view: &[u8], marks: Marks, rules: RuleFilter<'_>) -> Option<Rule> {
    let letters = marks.any(LETTER_RULE_MARKS) || new_activex(view);
    let trigger = if letters {
        &TRIGGER
    } else {
        &TRIGGER_PUNCTUATION
    };
    let jump = jump_for(letters, marks);
    if let Some(r) = Scanner::new(view, trigger, jump, rules).run() {
        return Some(r);
    }
    script_without_markup(view, marks, rules)
}

/// Script shapes judged over the whole view (no tag needed): the session cookie read, the page
/// written, globals looked up by computed names, calls without parentheses, bracket-only script.
/// Each shape is looked for only from the bytes it cannot do without (a `.` or `[` for members,
/// a backtick, `new`), so prose costs a `memchr` or two.
fn script_without_markup(view: &[u8], marks: Marks, rules: RuleFilter<'_>) -> Option<Rule> {
    use rules::script::*;
    if marks.any(Marks::of(b".[")) {
        for p in memchr::memchr2_iter(b'.', b'[', view) {
            if let Some(r) = member_shapes(view, p, rules) {
                return Some(r);
            }
        }
    }
    if marks.any(Marks::of(b"`")) || (marks.has(b'$') && marks.has(b'{')) {
        if let Some(r) = rule_if(rules, "xss-template-call", template_call_shape, view) {
            return Some(r);
        }
    }
    if marks.has(b'(') && memchr::memmem::find(view, b"function").is_some() {
        if let Some(r) = rule_if(
            rules,
            "xss-function-constructor",
            function_constructor,
            view,
        ) {
            return Some(r);
        }
    }
    if marks.has(b'!') && marks.has(b'[') {
        if let Some(r) = rule_if(rules, "xss-bracket-script", bracket_script, view) {
            return Some(r);
        }
    }
    rule_if(rules, "xss-module-import", module_import, view)
}

/// `id` when `rules` allows it and `check` holds on `view`.
fn rule_if(rules: RuleFilter<'_>, id: Rule, check: fn(&[u8]) -> bool, view: &[u8]) -> Option<Rule> {
    if rules.allows(id) && check(view) {
        rules.fire(id)
    } else {
        None
    }
}

/// The member shapes at a `.` or `[` at `p`: a sensitive property, the document written, a
/// global looked up by a computed name.
fn member_shapes(view: &[u8], p: usize, rules: RuleFilter<'_>) -> Option<Rule> {
    use rules::script::*;
    let mut k = text::skip_code_gap(view, p + 1);
    if view[p] == b'[' {
        if rules.allows("xss-computed-global") && computed_global_at(view, p) {
            return rules.fire("xss-computed-global");
        }
        // `["cookie"]`
        if matches!(view.get(k), Some(b'"' | b'\'' | b'`')) {
            k += 1;
        }
    }
    let next = view.get(k).copied().unwrap_or(0);
    if matches!(next, b'c' | b'd' | b'l')
        && rules.allows("xss-dom-access")
        && sensitive_member_at(view, k)
    {
        return rules.fire("xss-dom-access");
    }
    if view[p] == b'.'
        && p >= 8
        && &view[p - 8..p] == b"document"
        && rules.allows("xss-dom-write")
        && dom_write(&view[p - 8..])
    {
        return rules.fire("xss-dom-write");
    }
    None
}
