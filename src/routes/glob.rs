//! Route patterns of a policy file: an exact route id or a glob with `*` (any run of characters,
//! also none) and `?` (exactly one character). Bounded: a pattern is at most
//! [`MAX_PATTERN_BYTES`] and holds at most [`MAX_STARS`] stars, so matching a route id of `n`
//! bytes costs at most `n * stars` steps; the characters `[`, `]`, `{`, `}` and `\` are refused
//! (no classes, alternatives or escapes, so that a pattern never means something else later).

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_BYTES: usize = 256;
/// Most `*` in one pattern.
pub const MAX_STARS: usize = 8;

/// Why a pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// The pattern is empty.
    #[error("the pattern is empty (use \"*\" to match every route)")]
    Empty,
    /// Over [`MAX_PATTERN_BYTES`].
    #[error("the pattern is {0} bytes, over the limit of {MAX_PATTERN_BYTES}")]
    TooLong(usize),
    /// Over [`MAX_STARS`] stars.
    #[error("the pattern has {0} `*`, over the limit of {MAX_STARS}")]
    TooManyStars(usize),
    /// A reserved or control character.
    #[error("character {0:?} is not allowed in a pattern (only `*` and `?` are wildcards; no classes, braces or escapes)")]
    Reserved(char),
}

/// A checked route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    source: String,
    /// True when the pattern has no wildcard (compared as a plain string).
    exact: bool,
}

impl RoutePattern {
    /// Checks `source` and keeps it.
    pub fn parse(source: &str) -> Result<Self, GlobError> {
        if source.is_empty() {
            return Err(GlobError::Empty);
        }
        if source.len() > MAX_PATTERN_BYTES {
            return Err(GlobError::TooLong(source.len()));
        }
        if let Some(c) = source
            .chars()
            .find(|c| matches!(c, '[' | ']' | '{' | '}' | '\\') || c.is_control())
        {
            return Err(GlobError::Reserved(c));
        }
        let stars = source.matches('*').count();
        if stars > MAX_STARS {
            return Err(GlobError::TooManyStars(stars));
        }
        Ok(RoutePattern {
            exact: !source.contains(['*', '?']),
            source: source.to_owned(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when `route` matches. Iterative, backtracking only to the last star seen, so the cost
    /// is bounded by `route.len() * (stars + 1)` steps.
    pub fn matches(&self, route: &str) -> bool {
        if self.exact {
            return self.source == route;
        }
        let pattern: &[u8] = self.source.as_bytes();
        let text = route.as_bytes();
        let (mut p, mut t) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match pattern.get(p) {
                Some(b'*') => {
                    star = Some((p, t));
                    p += 1;
                }
                Some(b'?') => {
                    // One character: skip a whole UTF-8 sequence.
                    p += 1;
                    t += utf8_len(text[t]);
                }
                Some(&c) if c == text[t] => {
                    p += 1;
                    t += 1;
                }
                _ => match star {
                    Some((star_p, star_t)) => {
                        let next = star_t + utf8_len(text[star_t]);
                        star = Some((star_p, next));
                        p = star_p + 1;
                        t = next;
                    }
                    None => return false,
                },
            }
        }
        pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*') && t == text.len()
    }

    /// True when every route id this pattern matches is also matched by `earlier`, as far as can
    /// be told simply: the same pattern, `earlier` matching this exact id, `earlier` being `*`, or
    /// `earlier` a literal prefix (suffix) plus one `*` that this pattern's literal prefix (suffix)
    /// extends. Never claims a shadow that is not one; may miss unusual ones.
    pub fn is_shadowed_by(&self, earlier: &RoutePattern) -> bool {
        if earlier.source == self.source {
            return true;
        }
        if self.exact {
            return earlier.matches(&self.source);
        }
        let e = earlier.source.as_str();
        if e.matches('*').count() != 1 || e.contains('?') {
            return false;
        }
        let (prefix, suffix) = e.split_once('*').expect("one star");
        let own_prefix = literal_prefix(&self.source);
        let own_suffix = literal_suffix(&self.source);
        // `earlier` = prefix*suffix covers us when our literal ends carry both, without overlap.
        own_prefix.starts_with(prefix)
            && own_suffix.ends_with(suffix)
            && prefix.len() + suffix.len() <= self.min_len()
    }

    /// The fewest bytes a matching route id can have (stars match nothing, `?` one byte).
    fn min_len(&self) -> usize {
        self.source.len() - self.source.matches('*').count()
    }
}

fn literal_prefix(pattern: &str) -> &str {
    let end = pattern.find(['*', '?']).unwrap_or(pattern.len());
    &pattern[..end]
}

fn literal_suffix(pattern: &str) -> &str {
    let start = pattern.rfind(['*', '?']).map_or(0, |i| i + 1);
    &pattern[start..]
}

/// Bytes of the UTF-8 sequence that starts with `lead` (1 for a stray continuation byte).
fn utf8_len(lead: u8) -> usize {
    match lead {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(source: &str) -> RoutePattern {
        RoutePattern::parse(source).unwrap()
    }

    #[test]
    fn exact_and_wildcards_match() {
        assert!(pattern("trading").matches("trading"));
        assert!(!pattern("trading").matches("trading-eu"));
        assert!(pattern("chat-*").matches("chat-"));
        assert!(pattern("chat-*").matches("chat-eu-1"));
        assert!(!pattern("chat-*").matches("chat"));
        assert!(pattern("*-eu").matches("chat-eu"));
        assert!(pattern("a*b*c").matches("axxbyyc"));
        assert!(pattern("a*b*c").matches("abc"));
        assert!(!pattern("a*b*c").matches("acb"));
        assert!(pattern("r?").matches("r1"));
        assert!(pattern("r?").matches("ré"));
        assert!(!pattern("r?").matches("r"));
        assert!(!pattern("r?").matches("r12"));
        assert!(pattern("*").matches(""));
        assert!(pattern("**").matches("anything"));
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        assert_eq!(RoutePattern::parse(""), Err(GlobError::Empty));
        assert_eq!(
            RoutePattern::parse("chat-[ab]"),
            Err(GlobError::Reserved('['))
        );
        assert_eq!(RoutePattern::parse("a\\*"), Err(GlobError::Reserved('\\')));
        assert_eq!(
            RoutePattern::parse(&"x".repeat(300)),
            Err(GlobError::TooLong(300))
        );
        assert_eq!(
            RoutePattern::parse(&"*a".repeat(9)),
            Err(GlobError::TooManyStars(9))
        );
    }

    #[test]
    fn matching_stays_bounded_on_hostile_ids() {
        let p = pattern("*a*a*a*a*a*a*a*b");
        // Backtracking goes to the last star only: this finishes (an exponential matcher would not).
        assert!(!p.matches(&"a".repeat(10_000)));
        assert!(p.matches(&format!("{}b", "a".repeat(10_000))));
    }

    #[test]
    fn shadows_are_found_without_false_alarms() {
        assert!(pattern("chat-eu").is_shadowed_by(&pattern("chat-*")));
        assert!(pattern("chat-eu-*").is_shadowed_by(&pattern("chat-*")));
        assert!(pattern("anything").is_shadowed_by(&pattern("*")));
        assert!(pattern("x-*").is_shadowed_by(&pattern("x-*")));
        assert!(pattern("a*-eu").is_shadowed_by(&pattern("*-eu")));
        assert!(!pattern("chat-*").is_shadowed_by(&pattern("chat-eu")));
        assert!(!pattern("chat*").is_shadowed_by(&pattern("chat-*")));
        assert!(!pattern("trading").is_shadowed_by(&pattern("chat-*")));
        assert!(!pattern("ab*").is_shadowed_by(&pattern("ab*ab")));
    }
}
