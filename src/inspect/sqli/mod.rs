//! SQL injection detection: a SQL tokenizer and rules over the token stream, in the spirit of
//! libinjection (our own implementation and rules).
//!
//! A message is treated as a value an application pastes into a query. It is tokenized three
//! ways: as-is (a numeric or bare context), and as if it began inside a `'...'` or `"..."` string
//! literal, so the first token is the part the payload breaks out of. Two kinds of rules run:
//!
//! - anchored rules look at the first significant tokens after the break-out point and ask
//!   whether they continue the query (a boolean tautology, a stacked statement, an `ORDER BY`
//!   probe, a comment that truncates the query, ...);
//! - stream rules look at every token with a small look-back window, for constructs that are
//!   SQL wherever they appear (`UNION SELECT`, time delays, catalog tables, dangerous functions).
//!
//! Whitespace and comments are not tokens for the rules (comments are remembered as such), which
//! is how `UNION/**/SELECT` and friends are normalized. MySQL `/*! ... */` bodies are tokenized as
//! code.

mod lexer;
mod nosql;
mod rules;
#[cfg(test)]
mod tests;
mod vocab;

use super::normalize::Marks;
use super::rules::{RuleFilter, RuleInfo};
use crate::model::AuditTag;
use lexer::{Context, Kind, Lexer, Tok, COMMENT, DOLLAR};
use rules::{anchored, may_end_construct, stream_rule, text, Anchor, Rule, ANCHOR_TOKENS, WINDOW};

/// Every rule this detector reports (see [`super::rules`]). These rules were tuned on the
/// development corpus's sources of this class.
pub(super) static RULES: &[RuleInfo] = &[
    RuleInfo::written_for(
        "sqli-case-expression",
        AuditTag::Sqli,
        &["libinjection-data-sqli", "payloadbox-sqli", "patt-sqli"],
    ),
    RuleInfo::written_for(
        "sqli-catalog",
        AuditTag::Sqli,
        &["libinjection-data-sqli", "payloadbox-sqli", "patt-sqli"],
    ),
    RuleInfo::written_for(
        "sqli-clause",
        AuditTag::Sqli,
        &["libinjection-data-sqli", "payloadbox-sqli", "patt-sqli"],
    ),
    RuleInfo::written_for(
        "sqli-comment-truncation",
        AuditTag::Sqli,
        &["libinjection-data-sqli", "payloadbox-sqli", "patt-sqli"],
    ),
    RuleInfo::written_for(
        "sqli-dangerous-function",
        AuditTag::Sqli,
        &["libinjection-data-sqli", "payloadbox-sqli", "patt-sqli"],
    ),
    RuleInfo::written_for(
        "sqli-expression",
        AuditTag::Sqli,
        &["libinjection-data-sqli", "payloadbox-sqli", "patt-sqli"],
    ),
    RuleInfo::written_for(
        "sqli-order-by",
        AuditTag::Sqli,
        &["libinjection-data-sqli", "payloadbox-sqli", "patt-sqli"],
    ),
    RuleInfo::written_for(
        "sqli-outfile",
        AuditTag::Sqli,
        &["libinjection-data-sqli", "payloadbox-sqli", "patt-sqli"],
    ),
    RuleInfo::written_for(
        "sqli-stacked-query",
        AuditTag::Sqli,
        &["libinjection-data-sqli", "payloadbox-sqli", "patt-sqli"],
    ),
    RuleInfo::written_for(
        "sqli-statement",
        AuditTag::Sqli,
        &["libinjection-data-sqli", "payloadbox-sqli", "patt-sqli"],
    ),
    RuleInfo::written_for(
        "sqli-subquery",
        AuditTag::Sqli,
        &["libinjection-data-sqli", "payloadbox-sqli", "patt-sqli"],
    ),
    RuleInfo::written_for(
        "sqli-tautology",
        AuditTag::Sqli,
        &["libinjection-data-sqli", "payloadbox-sqli", "patt-sqli"],
    ),
    RuleInfo::written_for(
        "sqli-time-based",
        AuditTag::Sqli,
        &["libinjection-data-sqli", "payloadbox-sqli", "patt-sqli"],
    ),
    RuleInfo::written_for(
        "sqli-union",
        AuditTag::Sqli,
        &["libinjection-data-sqli", "payloadbox-sqli", "patt-sqli"],
    ),
    // A quote after prose that breaks out (the examples; no list's misses).
    RuleInfo::language("sqli-late-breakout", AuditTag::Sqli),
    // Written for the clauses and probes of sqlmap's payloads (found in its misses; the
    // issue's examples are of the same kind).
    RuleInfo::written_for("sqli-where-clause", AuditTag::Sqli, &["sqlmap-gen"]),
    RuleInfo::written_for("sqli-constant-condition", AuditTag::Sqli, &["sqlmap-gen"]),
    RuleInfo::written_for("sqli-list-item", AuditTag::Sqli, &["sqlmap-gen"]),
    // Written for the CRS regression tests' misses.
    RuleInfo::written_for("sqli-select-list", AuditTag::Sqli, &["crs-942"]),
    RuleInfo::written_for("sqli-terminated-value", AuditTag::Sqli, &["crs-942"]),
    RuleInfo::written_for("sqli-nosql-operator", AuditTag::Sqli, &["crs-942"]),
    RuleInfo::written_for("sqli-pg-cast", AuditTag::Sqli, &["crs-942"]),
    RuleInfo::written_for("sqli-json-operator", AuditTag::Sqli, &["crs-942"]),
];

/// Runs every context over `view` (whose marks are `marks`); returns the first rule that fires
/// among those `rules` allows.
pub fn detect(view: &[u8], marks: Marks, rules: RuleFilter<'_>) -> Option<Rule> {
    if view.is_empty() {
        return None;
    }
    // Token offsets are 32-bit; no frame or message limit lets a view come near 4 GiB.
    let view = &view[..view.len().min(lexer::MAX_VIEW)];
    if let Some(r) = nosql::operator_in_text(view, marks, rules) {
        return Some(r);
    }
    // Long texts: one pass that reads quotes as plain punctuation finds the stream constructs
    // wherever the quotes fall, and the contexts only look at how the text starts. Three full
    // passes would cost three times as much for nothing the anchored rules could use.
    // Form encoding (`+` for spaces) that the decode pass left alone because the payload
    // also has `+` operators.
    let form = marks.plus() && !marks.space();
    let long = view.len() > LONG_VIEW;
    if long {
        if let Some(r) = run(view, Context::Agnostic, Mode::StreamOnly, form, rules) {
            return Some(r);
        }
    }
    let mode = if long { Mode::AnchorOnly } else { Mode::Full };
    if let Some(r) = run(view, Context::Bare, mode, form, rules) {
        return Some(r);
    }
    // The constructs a value can be pasted into, each tried only when the text can close it.
    let closers = [
        (b'\'', marks.has(b'\'')),
        (b'"', marks.has(b'"')),
        (b'`', marks.has(b'`')),
        (
            DOLLAR,
            marks.has(b'$') && memchr::memmem::find(view, b"$$").is_some(),
        ),
        (
            COMMENT,
            marks.has(b'*') && marks.has(b'/') && memchr::memmem::find(view, b"*/").is_some(),
        ),
    ];
    for (q, present) in closers {
        if present {
            if let Some(r) = run(view, Context::Quoted(q), mode, form, rules) {
                return Some(r);
            }
        }
    }
    None
}

/// A key of a JSON message (decoded) that is a NoSQL query operator: `{"user": {"$ne": 1}}`
/// sends an operator where the application expected a value.
pub fn json_key(key: &[u8], rules: RuleFilter<'_>) -> Option<Rule> {
    if nosql::is_query_operator(key) {
        return rules.fire("sqli-nosql-operator");
    }
    None
}

/// Views longer than this are tokenized in full once (quote-agnostic), not once per context.
const LONG_VIEW: usize = 64 * 1024;

/// Which rules a pass feeds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Stream rules over every token, anchored rules at the end.
    Full,
    /// Only the first tokens, for the anchored rules.
    AnchorOnly,
    /// Only the stream rules.
    StreamOnly,
}

thread_local! {
    /// The anchor of the pass running on this thread: reused, so that a pass clears only the
    /// tokens the previous one kept instead of building (and copying) 450 bytes each time.
    static ANCHOR: std::cell::RefCell<Anchor> = const { std::cell::RefCell::new(Anchor::EMPTY) };
}

fn run(
    view: &[u8],
    ctx: Context,
    mode: Mode,
    form_encoded: bool,
    rules: RuleFilter<'_>,
) -> Option<Rule> {
    ANCHOR.with_borrow_mut(|anchor| {
        anchor.clear();
        run_with(view, ctx, mode, form_encoded, rules, anchor)
    })
}

fn run_with(
    view: &[u8],
    ctx: Context,
    mode: Mode,
    form_encoded: bool,
    rules: RuleFilter<'_>,
    anchor: &mut Anchor,
) -> Option<Rule> {
    let mut lx = Lexer::new(view, ctx).form_encoded(form_encoded);
    let mut win = [Tok::NONE; WINDOW];
    let mut head = 0usize;
    let mut seen: usize = 0;
    while let Some(t) = lx.next_tok() {
        if t.kind == Kind::Comment {
            if anchor.len > 0 && anchor.len <= ANCHOR_TOKENS && seen == anchor.len {
                anchor.comment_after[anchor.len - 1] = true;
                let body = text(view, &t);
                anchor.trivial_comment_after[anchor.len - 1] =
                    !body.iter().any(|b| b.is_ascii_alphanumeric());
            }
            anchor.hint |= is_optimizer_hint(text(view, &t));
            continue;
        }
        if anchor.len < ANCHOR_TOKENS {
            anchor.toks[anchor.len] = t;
            anchor.len += 1;
        } else {
            anchor.complete = false;
            if mode == Mode::AnchorOnly {
                break;
            }
        }
        head = (head + 1) % WINDOW;
        win[head] = t;
        seen += 1;
        if mode != Mode::AnchorOnly
            && may_end_construct(
                view,
                &t,
                win[(head + WINDOW - 1) % WINDOW].kind,
                win[(head + WINDOW - 2) % WINDOW].kind,
            )
        {
            if let Some(r) = stream_rule(view, &win, head, seen, &mut lx, rules) {
                return Some(r);
            }
        }
    }
    if mode == Mode::StreamOnly {
        return None;
    }
    anchored(view, anchor, ctx, rules)
}

/// An optimizer hint (`/*+ INDEX(t) */`): a comment only SQL writes.
fn is_optimizer_hint(comment: &[u8]) -> bool {
    comment
        .strip_prefix(b"/*")
        .is_some_and(|b| b.trim_ascii_start().starts_with(b"+"))
}
