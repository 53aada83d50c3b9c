//! NoSQL operator injection (labelled SQL injection): a MongoDB-style query operator where the
//! application expected a plain value. A form field `user[$ne]=x` or a JSON value
//! `{"user": {"$ne": null}}` turns an equality test into `not equal`, `regex`, `where` (server-
//! side JavaScript) and so on.
//!
//! The operators are a closed vocabulary ([`QUERY_OPERATORS`]); `$`-keys that are not query
//! operators (`$schema`, `$ref`, `$id`, EJSON's `$date`, `$oid`, Json.NET's `$type`, `$values`)
//! are what API documents carry, and never count.

use super::rules::fire;
use super::Rule;
use crate::inspect::normalize::Marks;
use crate::inspect::rules::RuleFilter;

/// MongoDB query operators (comparison, logical, element, evaluation, array), lowercase and
/// without the `$`, sorted.
const QUERY_OPERATORS: &[&[u8]] = &[
    b"all",
    b"and",
    b"elemmatch",
    b"eq",
    b"exists",
    b"expr",
    b"function",
    b"gt",
    b"gte",
    b"in",
    b"jsonschema",
    b"lt",
    b"lte",
    b"mod",
    b"ne",
    b"nin",
    b"nor",
    b"not",
    b"or",
    b"regex",
    b"size",
    b"text",
    b"where",
];

/// Is `name` (a key, lowercase or not, with its `$`) a query operator?
pub(super) fn is_query_operator(name: &[u8]) -> bool {
    let Some(rest) = name.strip_prefix(b"$") else {
        return false;
    };
    if rest.is_empty() || rest.len() > 10 {
        return false;
    }
    let mut buf = [0u8; 10];
    let lower = &mut buf[..rest.len()];
    lower.copy_from_slice(rest);
    lower.make_ascii_lowercase();
    QUERY_OPERATORS.binary_search(&&*lower).is_ok()
}

/// A query operator in a view (lowercase text): as a bracketed parameter name
/// (`user[$ne]=1`, `[$regex]`) or as the key of an object (`{"$where": ...}`,
/// `{user: {$gt: ""}}`, `, '$or': [...]`).
pub(super) fn operator_in_text(view: &[u8], marks: Marks, rules: RuleFilter<'_>) -> Option<Rule> {
    if !marks.has(b'$') || !(marks.has(b'[') || marks.has(b'{')) {
        return None;
    }
    for at in memchr::memchr_iter(b'$', view) {
        let name_end = view[at + 1..]
            .iter()
            .position(|b| !b.is_ascii_alphabetic())
            .map_or(view.len(), |k| at + 1 + k);
        if !is_query_operator(&view[at..name_end]) {
            continue;
        }
        if bracketed(view, at, name_end) || object_key(view, at, name_end) {
            fire!(rules, "sqli-nosql-operator");
        }
    }
    None
}

/// `[$op]`: the bracket syntax of form parameters (PHP, Express's `qs`).
fn bracketed(view: &[u8], at: usize, end: usize) -> bool {
    at > 0 && view[at - 1] == b'[' && view.get(end) == Some(&b']')
}

/// `{"$op":`, `, '$op' :`, `{$op:`: the operator is an object's key.
fn object_key(view: &[u8], at: usize, end: usize) -> bool {
    let before = &view[..at];
    let before = match before.last() {
        Some(&q @ (b'"' | b'\'')) => {
            if view.get(end) != Some(&q) {
                return false;
            }
            &before[..before.len() - 1]
        }
        _ => before,
    };
    let quoted = before.len() < at;
    let after = view.get(end + usize::from(quoted)..).unwrap_or(&[]);
    matches!(before.trim_ascii_end().last(), Some(b'{' | b','))
        && after.trim_ascii_start().first() == Some(&b':')
}
