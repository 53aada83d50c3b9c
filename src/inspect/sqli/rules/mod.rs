//! The judgements over the token stream: stream rules (`stream.rs`), anchored rules
//! (`anchored.rs`), and the grammar they share (`grammar.rs`: the adjacency check, operands,
//! statement shapes).

mod anchored;
mod grammar;
mod stream;

use super::lexer::Tok;

pub(super) use anchored::anchored;
pub(super) use stream::{may_end_construct, stream_rule};

/// Tokens kept for the anchored rules.
pub(super) const ANCHOR_TOKENS: usize = 32;
/// Look-back window of the stream rules.
pub(super) const WINDOW: usize = 8;

/// A rule id (`sqli-union`, ...).
pub(super) type Rule = &'static str;

/// Reports `$id` from the enclosing function when the rule filter allows it; otherwise the
/// scan goes on to the other rules. Every rule matches through this, at its own site.
macro_rules! fire {
    ($rules:expr, $id:expr) => {
        if let Some(r) = $rules.fire($id) {
            return Some(r);
        }
    };
}
pub(super) use fire;

/// The first significant tokens after a context was applied, with comment information.
pub(super) struct Anchor {
    pub(super) toks: [Tok; ANCHOR_TOKENS],
    /// `comment_after[k]`: a comment directly follows token k.
    pub(super) comment_after: [bool; ANCHOR_TOKENS],
    /// `trivial_comment_after[k]`: that comment says nothing (`--`, `#`, `/**/`, `-- -`).
    pub(super) trivial_comment_after: [bool; ANCHOR_TOKENS],
    pub(super) len: usize,
    /// The whole input fit (no significant token after the last one kept).
    pub(super) complete: bool,
    /// An optimizer hint comment (`/*+ ... */`) was seen.
    pub(super) hint: bool,
}

impl Anchor {
    /// No token kept; every slot [`Tok::NONE`], which the rules read past `len`.
    pub(super) const EMPTY: Anchor = Anchor {
        toks: [Tok::NONE; ANCHOR_TOKENS],
        comment_after: [false; ANCHOR_TOKENS],
        trivial_comment_after: [false; ANCHOR_TOKENS],
        len: 0,
        complete: true,
        hint: false,
    };

    /// Back to [`Anchor::EMPTY`], clearing only the slots the last pass filled.
    pub(super) fn clear(&mut self) {
        let used = self.len.min(ANCHOR_TOKENS);
        self.toks[..used].fill(Tok::NONE);
        self.comment_after[..used].fill(false);
        self.trivial_comment_after[..used].fill(false);
        self.len = 0;
        self.complete = true;
        self.hint = false;
    }
}

/// The bytes of token `t`.
pub(super) fn text<'a>(view: &'a [u8], t: &Tok) -> &'a [u8] {
    view.get(t.start()..t.end()).unwrap_or(&[])
}
