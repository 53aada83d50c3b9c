//! The grammar the judgements share: the adjacency check (which token classes SQL lets touch),
//! operands of boolean operators, arithmetic expressions, statement shapes.

use super::{text, Anchor};
use crate::inspect::sqli::lexer::{Kind, Tok};
use crate::inspect::sqli::vocab::Kw;

/// Skips `)` tokens from `p`.
pub(super) fn skip_rparens(a: &Anchor, mut p: usize) -> usize {
    while p < a.len && a.toks[p].kind == Kind::RParen {
        p += 1;
    }
    p
}

/// Parses an arithmetic expression (values, unary and binary arithmetic operators, balanced
/// parentheses, function calls) from `p`; returns the index after it and whether it contained a
/// number.
pub(super) fn arith_expr(a: &Anchor, mut p: usize) -> Option<(usize, bool, usize)> {
    let mut depth = 0usize;
    let mut expect_value = true;
    let mut saw_num = false;
    let mut words = 0usize;
    let start = p;
    while p < a.len {
        let t = &a.toks[p];
        if expect_value {
            match t.kind {
                Kind::Op | Kind::Not if matches!(t.kind, Kind::Not) || is_unary(t) => {}
                Kind::LParen => depth += 1,
                Kind::Num | Kind::Str => {
                    saw_num = true;
                    expect_value = false;
                }
                Kind::Var => expect_value = false,
                Kind::Word if t.kw == Kw::None || t.kw == Kw::Const => {
                    words += 1;
                    expect_value = false;
                }
                _ => return None,
            }
        } else {
            match t.kind {
                Kind::Op => expect_value = true,
                Kind::Comma if depth == 0 && saw_num => expect_value = true,
                Kind::RParen if depth > 0 => depth -= 1,
                _ => break,
            }
        }
        p += 1;
    }
    if expect_value || depth != 0 || p == start {
        return None;
    }
    Some((p, saw_num, words))
}

pub(super) fn is_unary(t: &Tok) -> bool {
    t.kind == Kind::Op && t.end() == t.start() + 1
}

/// What a boolean operand after AND/OR looks like.
#[derive(Default, Debug)]
pub(super) struct Operand {
    pub(super) cmp: bool,
    pub(super) func: bool,
    pub(super) select: bool,
    pub(super) values: usize,
    /// Only one value, then the end / a comment / `;` / `)` / a logic operator.
    pub(super) lone_value: bool,
    pub(super) lone_kind_strong: bool,
    /// A function only SQL has (not `len(` or `max(`, which code calls all the time).
    pub(super) sql_func: bool,
    /// The lone value is followed by a clause keyword (`1 or 1 group by ...`).
    pub(super) before_clause: bool,
    pub(super) valid: bool,
    pub(super) end: usize,
}

/// The `END` of the `CASE` at `p` (nested `CASE`s counted), when it has a `WHEN`; the last
/// token kept when the text runs past them.
pub(super) fn case_end(a: &Anchor, view: &[u8], p: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut when = false;
    for k in p..a.len {
        match text(view, &a.toks[k]) {
            b"case" => depth += 1,
            b"when" => when = true,
            b"end" => {
                depth -= 1;
                if depth == 0 {
                    return when.then_some(k);
                }
            }
            _ => {}
        }
    }
    // Cut off by the end of the kept tokens: a CASE that goes on.
    (!a.complete).then_some(a.len - 1)
}

pub(super) fn operand(a: &Anchor, view: &[u8], p: usize) -> Operand {
    let mut o = Operand::default();
    let mut q = p;
    let mut expect_value = true;
    let mut depth = 0i32;
    let mut last_value_idx = usize::MAX;
    // The depth of a `BETWEEN` waiting for its `AND`.
    let mut between: Option<i32> = None;
    while q < a.len {
        let t = &a.toks[q];
        match t.kind {
            // `x BETWEEN 1 AND 3`: the AND belongs to the comparison.
            Kind::Logic if !expect_value && between == Some(depth) && text(view, t) == b"and" => {
                between = None;
                expect_value = true;
            }
            Kind::Logic | Kind::Semi if depth <= 0 && !expect_value => break,
            Kind::Comma if depth <= 0 => break,
            // Inside parentheses: arguments and nested conditions.
            Kind::Comma | Kind::Logic if !expect_value => expect_value = true,
            Kind::Word if expect_value && text(view, t) == b"case" => {
                // `CASE WHEN .. THEN .. ELSE .. END` is one value, and only SQL writes it.
                match case_end(a, view, q) {
                    Some(e) => {
                        o.func = true;
                        o.sql_func = true;
                        o.values += 1;
                        last_value_idx = e;
                        expect_value = false;
                        q = e;
                    }
                    None => return o,
                }
            }
            Kind::LParen => {
                depth += 1;
                expect_value = true;
            }
            Kind::RParen => {
                depth -= 1;
                if expect_value && a.toks[q - 1].kind != Kind::LParen {
                    return o;
                }
                expect_value = false;
                if depth < 0 {
                    break;
                }
            }
            Kind::Func => {
                if !expect_value {
                    return o;
                }
                o.func |= matches!(t.kw, Kw::TimeFunc | Kw::Danger | Kw::SqlFunc);
                o.sql_func |= sql_specific(view, t);
                o.values += 1;
                // The call's parentheses are handled as a group.
                last_value_idx = q;
            }
            Kind::Word if t.kw == Kw::Select => {
                o.select = true;
                break;
            }
            Kind::Word if t.kw == Kw::Exists => {
                o.func = true;
            }
            Kind::Word if t.kw == Kw::CmpWord => {
                let next = a.toks.get(q + 1).filter(|_| q + 1 < a.len);
                let ok = match text(view, t) {
                    b"is" => {
                        let after_not = a.toks.get(q + 2).filter(|_| q + 2 < a.len);
                        let constant = |t: &Tok| t.kw == Kw::Const || t.kind == Kind::Num;
                        next.is_some_and(|n| {
                            constant(n) || n.kind == Kind::Not && after_not.is_some_and(constant)
                        })
                    }
                    b"in" => next.is_some_and(|n| n.kind == Kind::LParen),
                    _ => next.is_some(),
                };
                if !ok || expect_value {
                    return o;
                }
                if text(view, t) == b"between" {
                    between = Some(depth);
                }
                o.cmp = true;
                expect_value = true;
            }
            Kind::Cmp => {
                if expect_value {
                    return o;
                }
                o.cmp = true;
                expect_value = true;
            }
            Kind::Op => expect_value = true,
            Kind::Not => expect_value = true,
            Kind::Dot => expect_value = true,
            _ if t.is_value() => {
                if !expect_value {
                    // Two values in a row: prose, not SQL.
                    return o;
                }
                o.values += 1;
                last_value_idx = q;
                expect_value = false;
            }
            _ => break,
        }
        q += 1;
    }
    o.end = q;
    o.valid = !expect_value || o.select || o.func;
    if o.values == 1 && !o.cmp && last_value_idx != usize::MAX {
        let t = &a.toks[last_value_idx];
        let next_ok = q >= a.len && a.complete
            || a.comment_after[last_value_idx]
            || matches!(
                a.toks.get(q).map(|t| t.kind),
                Some(Kind::Semi | Kind::Logic)
            )
            || a.toks.get(q).filter(|_| q < a.len).is_some_and(|t| {
                matches!(
                    t.kw,
                    Kw::Group | Kw::Order | Kw::Having | Kw::Limit | Kw::Union | Kw::Into
                )
            });
        o.lone_value = next_ok;
        o.before_clause = a.toks.get(q).filter(|_| q < a.len).is_some_and(|t| {
            matches!(
                t.kw,
                Kw::Group | Kw::Order | Kw::Having | Kw::Limit | Kw::Union | Kw::Into
            )
        });
        o.lone_kind_strong = matches!(t.kind, Kind::Num | Kind::Var)
            || (t.kind == Kind::Word && t.kw == Kw::Const && text(view, t) != b"unknown");
    }
    o
}

/// Does a statement keyword at `p` start something that is clearly SQL?
pub(super) fn statement_shape(a: &Anchor, view: &[u8], p: usize, strict: bool) -> bool {
    let t = &a.toks[p];
    let next = a.toks.get(p + 1).filter(|_| p + 1 < a.len);
    let next2 = a.toks.get(p + 2).filter(|_| p + 2 < a.len);
    let end_after = |k: usize| k >= a.len && a.complete || a.comment_after[k.saturating_sub(1)];
    match t.kw {
        Kw::Select => {
            let Some(n) = next else { return false };
            let listish = n.kind == Kind::Var
                || (n.kind == Kind::Num
                    && next2.is_some_and(|t| {
                        t.kind == Kind::Semi || t.kind == Kind::Comma || t.kw == Kw::From
                    }))
                || (n.kw == Kw::Limit && next2.is_some_and(|t| t.kind == Kind::Num))
                || n.kind == Kind::Func
                || (n.kind == Kind::Op && text(view, n) == b"*")
                || matches!(n.kw, Kw::SqlFunc | Kw::Distinct | Kw::All | Kw::Catalog)
                || (n.kind == Kind::Num && !strict)
                // `select(user())`, `select pg_sleep`
                || (n.kind == Kind::LParen
                    && next2.is_some_and(|t| {
                        t.kind == Kind::Func
                            && matches!(t.kw, Kw::SqlFunc | Kw::TimeFunc | Kw::Table)
                    }))
                || (n.kw == Kw::TimeFunc && next2.is_none() && a.complete);
            if !listish {
                if strict && select_without_from(a, view, p) {
                    return true;
                }
                // `select x, y from z;`: SQL token by token up to FROM and a table.
                let end = (p + 1..a.len).find(|&k| a.toks[k].kw == Kw::From);
                return match end {
                    Some(f) => {
                        f + 1 < a.len
                            && a.toks[f + 1].is_value()
                            && valid_seq(a, p + 1, f)
                            && (!strict || f > p + 2 || a.toks[f + 1].kw == Kw::Catalog)
                            && (!strict || valid_seq(a, f + 1, a.len) && a.complete)
                    }
                    None => false,
                };
            }
            if strict {
                // Look for FROM, a terminator, or a function call shortly after.
                let mut k = p + 1;
                while k < a.len {
                    let t = &a.toks[k];
                    if t.kw == Kw::From || t.kind == Kind::Semi || a.comment_after[k] {
                        return true;
                    }
                    k += 1;
                }
                // (a select list that runs to the end is SQL throughout: not `Select all
                // required data`)
                return end_after(k) && valid_seq(a, p + 1, a.len)
                    || n.kind == Kind::Var
                    || n.kind == Kind::Func
                    || n.kw == Kw::Catalog;
            }
            true
        }
        Kw::Waitfor => next.is_some_and(|n| n.kw == Kw::Delay),
        Kw::Stmt => {
            let name = text(view, t);
            let Some(n) = next else {
                return name == b"shutdown" && !strict;
            };
            match name {
                b"drop" | b"truncate" | b"alter" | b"create" => {
                    n.kw == Kw::Table && next2.is_some_and(|t| t.is_value())
                }
                b"exec" | b"execute" => {
                    let nn = text(view, n);
                    nn.starts_with(b"xp_")
                        || nn.starts_with(b"sp_")
                        || nn == b"master"
                        || n.kind == Kind::Var
                        || n.kind == Kind::LParen
                            && next2.is_some_and(|t| {
                                matches!(t.kind, Kind::Str | Kind::OpenStr | Kind::Var)
                            })
                        // Oracle's dynamic SQL: `EXECUTE IMMEDIATE 'select ..'`.
                        || nn == b"immediate"
                            && next2.is_some_and(|t| {
                                matches!(t.kind, Kind::Str | Kind::OpenStr | Kind::Var)
                            })
                }
                b"declare" => n.kind == Kind::Var,
                b"insert" | b"replace" => n.kw == Kw::Into || values_follow(a, p + 1),
                b"delete" => {
                    n.kw == Kw::From
                        || matches!(text(view, n), b"low_priority" | b"quick" | b"ignore")
                            && next2.is_some_and(|t| t.kw == Kw::From)
                }
                b"update" => {
                    next2.is_some_and(|t| t.kw == Kw::Set)
                        && n.is_value()
                        && a.toks
                            .get(p + 3)
                            .is_some_and(|t| p + 3 < a.len && t.is_value())
                        && a.toks
                            .get(p + 4)
                            .is_some_and(|t| p + 4 < a.len && t.kind == Kind::Cmp)
                }
                b"desc" | b"describe" | b"show" => {
                    !strict
                        && n.is_value()
                        && (end_after(p + 2) || next2.is_some_and(|t| t.kind == Kind::Semi))
                }
                b"shutdown" => !strict,
                // `GRANT ALL ON ..`, `GRANT SELECT, INSERT ON ..` (not `Grant of Patent ..`).
                b"grant" | b"revoke" => {
                    !strict
                        && (matches!(n.kw, Kw::All | Kw::Select | Kw::Stmt | Kw::Outfile)
                            || n.kind == Kind::Word
                                && next2.is_some_and(|t| matches!(text(view, t), b"to" | b"on")))
                }
                _ => false,
            }
        }
        Kw::Set => next.is_some_and(|n| n.kind == Kind::Var) && next2.is_some_and(|t| t.is_cmp()),
        _ => false,
    }
}

/// Token classes for the adjacency check.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    Value,
    Func,
    LParen,
    RParen,
    Comma,
    Semi,
    Dot,
    Op,
    Cmp,
    Logic,
    Keyword,
    Invalid,
}

pub(super) fn class(t: &Tok) -> Class {
    match t.kind {
        Kind::Str | Kind::OpenStr | Kind::Num | Kind::Var => Class::Value,
        Kind::Word => match t.kw {
            Kw::CmpWord => Class::Cmp,
            _ if t.is_value() => Class::Value,
            _ => Class::Keyword,
        },
        Kind::Func => Class::Func,
        Kind::Op | Kind::Not => Class::Op,
        Kind::Cmp => Class::Cmp,
        Kind::Logic => Class::Logic,
        Kind::LParen => Class::LParen,
        Kind::RParen => Class::RParen,
        Kind::Comma => Class::Comma,
        Kind::Semi => Class::Semi,
        Kind::Dot => Class::Dot,
        Kind::Comment | Kind::Other => Class::Invalid,
    }
}

/// Could tokens `from..to` be a stretch of SQL? Checks every adjacent pair against what SQL's
/// grammar allows (two values never touch, a function name is followed by `(`, ...). Prose
/// fails quickly: its words are values that touch.
pub(super) fn valid_seq(a: &Anchor, from: usize, to: usize) -> bool {
    let to = to.min(a.len);
    let mut prev: Option<Class> = None;
    let mut prev_tok: Option<&Tok> = None;
    for t in &a.toks[from.min(to)..to] {
        // `TOP 5`, `LIMIT 1`: the number belongs to the keyword.
        let c = if t.kind == Kind::Num && prev_tok.is_some_and(|p: &Tok| p.kw == Kw::Limit) {
            Class::Keyword
        } else {
            class(t)
        };
        if c == Class::Invalid {
            return false;
        }
        if let Some(p) = prev {
            use Class::*;
            let bad = matches!(
                (p, c),
                (Value, Value | Func | LParen)
                    | (RParen, Value | Func | LParen)
                    | (LParen, Cmp | Logic | Comma)
                    | (Cmp, Cmp | Logic | RParen | Comma)
                    | (Logic, Cmp | Logic | RParen | Comma)
                    | (Comma, RParen | Comma | Cmp | Logic)
                    | (Op, RParen | Comma | Logic)
                    | (Dot, LParen | RParen | Op | Cmp | Logic | Comma | Semi | Dot)
            ) || (p == Func && c != LParen);
            // `count(*)`, `select *, x`: a wildcard, not a multiplication.
            let wildcard = matches!(c, RParen | Comma | Keyword)
                && prev_tok.is_some_and(|t: &Tok| t.kw == Kw::All);
            let bad = bad && !wildcard;
            if bad {
                return false;
            }
        }
        prev = Some(c);
        prev_tok = Some(t);
    }
    prev.is_some()
}

/// Does a function call or SQL keyword of weight appear in `from..to`?
pub(super) fn has_sql_weight(a: &Anchor, from: usize, to: usize) -> bool {
    a.toks[from.min(to).min(a.len)..to.min(a.len)]
        .iter()
        .any(|t| {
            (t.kind == Kind::Func && matches!(t.kw, Kw::SqlFunc | Kw::TimeFunc | Kw::Danger))
                || t.kind == Kind::Var
                || matches!(t.kw, Kw::Select | Kw::Union)
        })
}

/// The quote that closes the break-out string `s0` (its last byte), or 0.
pub(super) fn quote_of(view: &[u8], s0: &Tok) -> u8 {
    match view.get(s0.end().wrapping_sub(1)) {
        Some(&q @ (b'\'' | b'"')) if s0.end() > 0 => q,
        _ => 0,
    }
}

/// A comparison written the SQL way rather than the way programming languages write it: `=` or
/// `<>` rather than `==`/`!=`, between plain names rather than `self.attr` (`or a=a`, `or x=y--`).
pub(super) fn sql_style_comparison(view: &[u8], a: &Anchor, from: usize, to: usize) -> bool {
    let to = to.min(a.len);
    let toks = &a.toks[from.min(to)..to];
    toks.iter().any(|t| t.is_cmp())
        && !toks.iter().any(|t| {
            t.kind == Kind::Dot || t.kind == Kind::Cmp && matches!(text(view, t), b"==" | b"!=")
        })
}

/// A call of a function only SQL has: the time and out-of-database functions and the SQL
/// functions whose names programming languages do not also use.
pub(super) fn sql_specific(view: &[u8], t: &Tok) -> bool {
    t.kind == Kind::Func
        && match t.kw {
            Kw::TimeFunc | Kw::Danger => true,
            Kw::SqlFunc => !matches!(
                text(view, t),
                b"len"
                    | b"length"
                    | b"min"
                    | b"max"
                    | b"sum"
                    | b"abs"
                    | b"lower"
                    | b"upper"
                    | b"chr"
                    | b"ord"
                    | b"hex"
                    | b"bin"
                    | b"oct"
                    | b"count"
                    | b"reverse"
                    | b"left"
                    | b"right"
                    | b"floor"
                    | b"rand"
                    | b"now"
                    | b"position"
                    | b"quote"
                    | b"encode"
                    | b"decode"
                    | b"log"
                    | b"sin"
                    | b"cos"
                    | b"tan"
                    | b"sqrt"
                    | b"exp"
                    | b"pi"
                    | b"print"
            ),
            _ => false,
        }
}

/// A comparison of constants (`1=1`, `'a'='a'`, `-8=-3`) in `from..to`: a tautology or a
/// contradiction, never a question a person asks.
pub(super) fn constant_comparison(a: &Anchor, from: usize, to: usize) -> bool {
    let toks = &a.toks[from.min(to).min(a.len)..to.min(a.len)];
    let has_cmp = toks.iter().any(Tok::is_cmp);
    // Function results count as constants: `2947=LIKE(...)` is a probe, not a question.
    let constants_only = toks.iter().all(|t| {
        t.is_cmp()
            || matches!(
                t.kind,
                Kind::Num
                    | Kind::Str
                    | Kind::OpenStr
                    | Kind::Op
                    | Kind::Cmp
                    | Kind::LParen
                    | Kind::RParen
                    | Kind::Func
                    | Kind::Comma
                    // (`1 BETWEEN 1 AND 1`, `1=1 AND 2=2`)
                    | Kind::Logic
            )
    });
    has_cmp && constants_only && toks.iter().any(|t| matches!(t.kind, Kind::Num | Kind::Str))
}

/// `ORDER BY n` / `GROUP BY x` right after the break-out point.
pub(super) fn order_by_probe(a: &Anchor, p: usize, quoted: bool) -> bool {
    if !(a.toks.get(p + 1).is_some_and(|n| n.kw == Kw::By) && p + 2 < a.len) {
        return false;
    }
    let v = &a.toks[p + 2];
    v.kind == Kind::Num
        || v.is_value() && (quoted || p > 0)
        || v.kind == Kind::Func && matches!(v.kw, Kw::TimeFunc | Kw::SqlFunc | Kw::Danger)
}

/// After a break-out string, an operator chain leading to a SQL function call:
/// `'+if(benchmark(...))+'`, `"||pg_sleep(5)--`.
pub(super) fn operand_after_op(a: &Anchor, p: usize) -> bool {
    for t in &a.toks[p.min(a.len)..a.len] {
        match t.kind {
            Kind::Op | Kind::Not | Kind::Cmp | Kind::LParen => {}
            Kind::Func => return matches!(t.kw, Kw::TimeFunc | Kw::Danger | Kw::SqlFunc),
            _ => return false,
        }
    }
    false
}

/// `INSERT x (a, b) VALUES (`, `REPLACE x VALUES (`: a table name, an optional column list, then
/// `VALUES (`, from `p` (the token after the statement word).
pub(super) fn values_follow(a: &Anchor, p: usize) -> bool {
    let at = |i: usize| a.toks.get(i).filter(|_| i < a.len);
    if !at(p).is_some_and(|t| t.kind == Kind::Word && t.kw == Kw::None) {
        return false;
    }
    let mut k = p + 1;
    if at(k).is_some_and(|t| t.kind == Kind::LParen) {
        // The column list: names and commas.
        k += 1;
        while at(k).is_some_and(|t| t.kind == Kind::Word || t.kind == Kind::Comma) {
            k += 1;
        }
        if !at(k).is_some_and(|t| t.kind == Kind::RParen) {
            return false;
        }
        k += 1;
    }
    at(k).is_some_and(|t| t.kw == Kw::Values) && at(k + 1).is_some_and(|t| t.kind == Kind::LParen)
}

/// A `SELECT` with clauses but no `FROM` (`SELECT x GROUP BY y HAVING COUNT(z) >= 9`): SQL token
/// by token, the whole text, with a comparison or a SQL function after the clause.
fn select_without_from(a: &Anchor, view: &[u8], p: usize) -> bool {
    let Some(c) = (p + 1..a.len).find(|&k| {
        matches!(
            a.toks[k].kw,
            Kw::From | Kw::Where | Kw::Group | Kw::Having | Kw::Order
        )
    }) else {
        return false;
    };
    let clause = a.toks[c].kw;
    let body = if matches!(clause, Kw::Group | Kw::Order) {
        c + 2
    } else {
        c + 1
    };
    clause != Kw::From
        && c > p + 1
        && a.complete
        && body < a.len
        && (clause != Kw::Group && clause != Kw::Order || a.toks[c + 1].kw == Kw::By)
        && valid_seq(a, p + 1, c)
        && valid_seq(a, body, a.len)
        && a.toks[body..a.len]
            .iter()
            .any(|t| t.is_cmp() || sql_specific(view, t) || t.kw == Kw::Having)
}
