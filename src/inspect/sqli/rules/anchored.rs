//! Anchored rules: what the first significant tokens after the break-out point do to the query
//! (a tautology, a stacked statement, an `ORDER BY` probe, a comment that truncates it, ...).

use super::grammar::*;
use super::{fire, text, Anchor, Rule};
use crate::inspect::rules::RuleFilter;
use crate::inspect::sqli::lexer::{is_space, is_word_byte, Context, Kind, Tok};
use crate::inspect::sqli::vocab::Kw;

/// Rules anchored at the break-out point.
pub(in crate::inspect::sqli) fn anchored(
    view: &[u8],
    a: &Anchor,
    ctx: Context,
    rules: RuleFilter<'_>,
) -> Option<Rule> {
    if a.len == 0 {
        return None;
    }
    let quoted = matches!(ctx, Context::Quoted(_));
    let mut p;
    // The bare context started with a value (`1 and ...`), not with the operator itself.
    let mut bare_prefix = false;
    if quoted {
        // A quote right after a space opens a quoted word in prose or code (`x = 'a'`,
        // `not to "show"`): the text before it is no value a query holds.
        let s0 = text(view, &a.toks[0]);
        let before_quote = &s0[..s0.len().saturating_sub(1)];
        // Nor is a line of code (`f(r'`, `a[0] == '`, `worker.send('`).
        if before_quote
            .iter()
            .any(|&b| matches!(b, b'(' | b'[' | b'{' | b',' | b';'))
        {
            return None;
        }
        if before_quote.last().is_some_and(|&b| is_space(b))
            && !before_quote.iter().all(|&b| is_space(b))
        {
            // Unless what follows is unmistakably SQL (`hello ' or 1=1 --`).
            return late_breakout(view, a, rules);
        }
        // Comment right after the break-out: `admin'--`, `admin' #`, `admin'/*`.
        let s0 = &a.toks[0];
        if a.comment_after[0]
            && a.trivial_comment_after[0]
            && (a.len == 1 || a.toks[1].kind == Kind::Semi && a.len == 2)
        {
            let body = text(view, s0);
            let body = &body[..body.len().saturating_sub(1)];
            if !body.is_empty()
                && body.len() <= 40
                && body
                    .iter()
                    .all(|&b| is_word_byte(b) || matches!(b, b'-' | b'.' | b'@'))
            {
                fire!(rules, "sqli-comment-truncation");
            }
        }
        // A statement terminator right after the break-out: `admin@example.org';`.
        if a.len == 2 && a.complete && a.toks[1].kind == Kind::Semi && plain_value(view, s0) {
            fire!(rules, "sqli-terminated-value");
        }
        // A call of a time function right after the break-out: `2020-01-01' sleep(20) '`.
        if a.toks
            .get(1)
            .is_some_and(|t| t.kind == Kind::Func && t.kw == Kw::TimeFunc)
            && a.len > 3
            && text(view, &a.toks[3])
                .first()
                .is_some_and(u8::is_ascii_digit)
            && plain_value(view, s0)
        {
            fire!(rules, "sqli-time-based");
        }
        p = skip_rparens(a, 1);
    } else {
        p = 0;
        // An optional value the payload starts with: `1`, `-1`, `((1))*2`, `1)`.
        if let Some((end, saw_num, words)) = arith_expr(a, 0) {
            let breaks_parens =
                words == 1 && end < a.len && a.toks[end].kind == Kind::RParen && end == 1;
            if (saw_num && words <= 1)
                || (words == 0 && a.toks[0].kind == Kind::Var)
                || breaks_parens
            {
                p = end;
            } else {
                return bare_statement(view, a, rules);
            }
        } else if a.len > 2
            && matches!(a.toks[0].kind, Kind::Num | Kind::Str)
            && a.toks[1].kind == Kind::Comma
        {
            // An item of a list: `5,(CASE ..)`, `7,IIF(..)`.
            p = 1;
        } else if !matches!(a.toks[0].kind, Kind::Logic | Kind::Semi | Kind::RParen)
            && a.toks[0].kw != Kw::Union
        {
            return bare_statement(view, a, rules);
        }
        bare_prefix = p > 0;
        p = skip_rparens(a, p);
    }
    if p >= a.len {
        return None;
    }
    if quoted {
        if let Some(r) = breakout_expression(a, view, p, rules) {
            return Some(r);
        }
    }
    if quoted || p > 0 {
        if let Some(r) = boundary_clause(view, a, p, rules) {
            return Some(r);
        }
        p = skip_boundary(a, view, p, quoted);
        if p >= a.len {
            return None;
        }
    }
    let t = a.toks[p];
    match t.kind {
        Kind::Logic => {
            let o = operand(a, view, p + 1);
            // A lone number after AND/OR (`1 or 1`) needs a comment to end the query in the bare
            // context: `1950 or 1960` is prose.
            let strong_lone = o.lone_value
                && o.lone_kind_strong
                && (quoted
                    || o.before_clause
                    || a.hint
                    || a.comment_after[o.end.saturating_sub(1).min(a.len - 1)]);
            // With nothing before AND/OR (a message that starts with it), a comparison only
            // counts between constants: `and x is not null` is a line of code or prose.
            let cmp_ok = o.cmp
                && (quoted
                    || bare_prefix
                    || constant_comparison(a, p + 1, o.end)
                    || sql_style_comparison(view, a, p + 1, o.end));
            let func_ok = if quoted || bare_prefix {
                o.func
            } else {
                o.sql_func
            };
            if o.valid && (cmp_ok || func_ok || o.select || strong_lone) {
                fire!(rules, "sqli-tautology");
            }
            if o.lone_value && quoted && o.values == 1 {
                // `' or 'x` closed by the application: weak alone, strong when a comment follows.
                let last = o.end.saturating_sub(1).min(a.len - 1);
                if a.comment_after[last] {
                    fire!(rules, "sqli-tautology");
                }
            }
        }
        Kind::Semi => {
            let q = p + 1;
            if q < a.len
                && (statement_shape(a, view, q, false)
                    || a.toks[q].kw == Kw::Select
                    || a.toks[q].kind == Kind::Func
                        && matches!(a.toks[q].kw, Kw::SqlFunc | Kw::TimeFunc | Kw::Danger)
                    || sql_block(a, view, q))
            {
                fire!(rules, "sqli-stacked-query");
            }
        }
        Kind::Word => match t.kw {
            Kw::Order | Kw::Group if order_by_probe(a, p, quoted) => {
                fire!(rules, "sqli-order-by");
            }
            Kw::Having => {
                let o = operand(a, view, p + 1);
                if o.valid && o.cmp {
                    fire!(rules, "sqli-tautology");
                }
            }
            Kw::CmpWord if p > 0 => {
                // `1 RLIKE (SELECT ...)`, `x' LIKE SLEEP(5)`: the value compared to a query.
                let o = operand(a, view, p + 1);
                if o.valid && (o.select || o.sql_func) {
                    fire!(rules, "sqli-expression");
                }
            }
            Kw::Union
                if p > 0
                    && (p + 1 >= a.len && a.complete
                        || a.comment_after[p]
                        || a.toks.get(p + 1).is_some_and(|n| {
                            n.kind == Kind::LParen
                                || matches!(n.kw, Kw::Select | Kw::All | Kw::Distinct)
                        })) =>
            {
                // `-1 union`, `0-1/1/**/union`: a value, then a union of what follows.
                fire!(rules, "sqli-union");
            }
            Kw::From
                if (quoted || p > 0)
                    && a.toks.get(p + 1).is_some_and(|n| n.is_value())
                    && a.toks.get(p + 2).is_some_and(|n| {
                        p + 2 < a.len
                            && matches!(n.kw, Kw::Where | Kw::Limit | Kw::Group | Kw::Order)
                    }) =>
            {
                fire!(rules, "sqli-clause");
            }
            Kw::Limit | Kw::Procedure | Kw::Into
                if (quoted || p > 0)
                    && a.toks.get(p + 1).is_some_and(|n| {
                        n.kind == Kind::Num || n.kw == Kw::Outfile || text(view, n) == b"analyse"
                    }) =>
            {
                fire!(rules, "sqli-clause");
            }
            Kw::Select | Kw::Stmt | Kw::Waitfor | Kw::Set
                if (quoted || p > 0) && statement_shape(a, view, p, false) =>
            {
                fire!(rules, "sqli-stacked-query");
            }
            _ => {}
        },
        Kind::Op | Kind::Cmp if quoted => {
            // `'=0--`, `' - 1 != 2 '`, `'+if(benchmark(...))+'`: the break-out string used as
            // an operand.
            let o = operand_after_op(a, p);
            if o {
                fire!(rules, "sqli-expression");
            }
        }
        Kind::Comma if list_item_probe(a, view, p + 1) => {
            // `5,(CASE WHEN 3=3 THEN 1 ELSE NULL END)`, `7',IIF(2=2,1,1/0)`: the value ends an
            // item of a list (a select list, arguments) and the payload adds one.
            fire!(rules, "sqli-list-item");
        }
        Kind::Comma if quoted => {
            // `'),NULL,... waitfor` handled by stream rules; a select list breakout:
            // `', (select ...))`
            let mut k = p + 1;
            while k < a.len && k < p + 10 {
                if a.toks[k].kw == Kw::Select {
                    fire!(rules, "sqli-expression");
                }
                k += 1;
            }
        }
        _ => {}
    }
    None
}

/// After a break-out string: an expression that runs to the application's closing quote (the
/// last token is an open string) or to a comment, is SQL token by token, and has operators:
/// `A' && 'B`, `1' * id - '0`, `asd' =- (-'asd') --`.
pub(super) fn breakout_expression(
    a: &Anchor,
    view: &[u8],
    p: usize,
    rules: RuleFilter<'_>,
) -> Option<Rule> {
    // Where the expression ends: the first comment, or the end of the text.
    let mut end = None;
    for k in p..a.len {
        if a.comment_after[k] {
            end = Some(k + 1);
            break;
        }
    }
    let end = match end {
        Some(e) => e,
        None if a.complete => {
            if a.toks[a.len - 1].kind != Kind::OpenStr {
                return None;
            }
            a.len
        }
        None => return None,
    };
    let s0 = text(view, &a.toks[0]);
    // The value a query quotes is a word or number (`admin`, `1`, `x`), not a line of code
    // (`f(r`, `a[0] == `, `worker.send(`).
    if s0[..s0.len().saturating_sub(1)]
        .iter()
        .any(|&b| matches!(b, b'(' | b'[' | b'{' | b',' | b';'))
    {
        return None;
    }
    if end <= p || s0.len() > 64 {
        return None;
    }
    let last = &a.toks[end - 1];
    let open_end = last.kind == Kind::OpenStr && !a.comment_after[end - 1];
    if open_end {
        // The application's quote must be the one that closes the final string, and what it
        // closes is a value (`'1`, `'x`, `'`), not the rest of a line of code.
        let ctx_quote = quote_of(view, &a.toks[0]);
        if view.get(last.start()) != Some(&ctx_quote) {
            return None;
        }
        let body = text(view, last).get(1..).unwrap_or(&[]).trim_ascii_end();
        if body.len() > 32
            || body
                .iter()
                .any(|&b| is_space(b) || matches!(b, b',' | b'(' | b')' | b';' | b'[' | b']'))
        {
            return None;
        }
    }
    // A URL with a query string is not a value an application quotes.
    let body = &s0[..s0.len().saturating_sub(1)];
    if body.contains(&b'?') && body.contains(&b'=') {
        return None;
    }
    let op_count = a.toks[p..end]
        .iter()
        .filter(|t| matches!(class(t), Class::Op | Class::Cmp | Class::Logic))
        .count();
    let strong = a.toks[p..end].iter().any(|t| t.kind == Kind::Cmp)
        || (op_count >= 2 && a.toks[p..end].iter().any(Tok::is_cmp))
        || has_sql_weight(a, p, end);
    if open_end && view.get(last.start() + 1).is_some_and(|&b| is_space(b)) && !strong {
        return None;
    }
    // Prose quotes a word: ` "LIKE" STAMP`, `SMALL "&" SIGN`. A payload's break-out value and
    // its final string do not both touch spaces, and a prose-like prefix needs real SQL.
    let s0_spaced = s0
        .iter()
        .skip_while(|&&b| is_space(b))
        .any(|&b| is_space(b));
    if s0_spaced {
        let final_spaced = open_end && view.get(last.start() + 1).is_some_and(|&b| is_space(b));
        let trivial_end = open_end || a.trivial_comment_after[end - 1];
        if final_spaced || !trivial_end || !strong {
            return None;
        }
    }
    // The break-out string is a value: it must be followed by an operator.
    let first = class(&a.toks[p]);
    let opens_expression = matches!(first, Class::Op | Class::Cmp | Class::Logic)
        || first == Class::LParen && has_sql_weight(a, p, end);
    if !opens_expression {
        return None;
    }
    if !valid_seq(a, p, end) {
        return None;
    }
    let ops = a.toks[p..end]
        .iter()
        .filter(|t| matches!(class(t), Class::Op | Class::Cmp | Class::Logic))
        .count();
    let values = a.toks[p..end]
        .iter()
        .filter(|t| class(t) == Class::Value)
        .count();
    if ops >= 1 && values >= 1 || has_sql_weight(a, p, end) {
        fire!(rules, "sqli-expression");
    }
    None
}

/// The bare context when the text does not start with a value: a statement of its own
/// (`select @@version`, `; drop table x`, `waitfor delay '0:0:5'`).
pub(super) fn bare_statement(view: &[u8], a: &Anchor, rules: RuleFilter<'_>) -> Option<Rule> {
    // A clause continuing the query: ` ORDER BY 3`, ` WHERE 1=1 AND 1=0#`, ` HAVING 1=1--`.
    let t0 = &a.toks[0];
    match t0.kw {
        Kw::Order | Kw::Group if order_by_probe(a, 0, false) => {
            let v = &a.toks[2];
            if v.kind == Kind::Num && (a.complete && a.len <= 4 || a.comment_after[2]) {
                fire!(rules, "sqli-order-by");
            }
        }
        Kw::Limit
            if a.toks
                .get(1)
                .is_some_and(|n| n.kind == Kind::Num && a.len > 1) =>
        {
            let last = a.len - 1;
            if a.complete && a.comment_after[last] && valid_seq(a, 1, a.len) {
                fire!(rules, "sqli-clause");
            }
        }
        // `PROCEDURE ANALYSE(`: MySQL's table analysis continuing a SELECT.
        Kw::Procedure if a.len > 1 && text(view, &a.toks[1]) == b"analyse" => {
            fire!(rules, "sqli-clause");
        }
        Kw::Where | Kw::Having => {
            let o = operand(a, view, 1);
            if o.valid && o.cmp && valid_seq(a, 1, o.end) {
                fire!(rules, "sqli-tautology");
            }
        }
        _ => {}
    }
    // A word the payload starts with, then a boolean test: `hi' or 1=1 --`, `HOPE AND -8=-3`.
    if a.len >= 3 && a.toks[0].is_value() && a.toks[1].kind == Kind::Logic {
        let o = operand(a, view, 2);
        if o.valid && (o.func || o.select || o.cmp && constant_comparison(a, 2, o.end)) {
            fire!(rules, "sqli-tautology");
        }
    }
    // A CASE expression: `(CASE WHEN 1=1 THEN 1 ELSE NULL END)`, `case 1 when 2 then 2 end`.
    {
        let mut k = 0;
        while k < a.len && a.toks[k].kind == Kind::LParen {
            k += 1;
        }
        if k < a.len && text(view, &a.toks[k]) == b"case" {
            let mut stage = 0;
            for t in &a.toks[k + 1..a.len] {
                let w = text(view, t);
                stage = match (stage, w) {
                    (0, b"when") => 1,
                    (1, b"then") => 2,
                    (2, b"end") => 3,
                    _ => stage,
                };
            }
            if stage == 3 {
                fire!(rules, "sqli-case-expression");
            }
        }
    }
    // A parenthesized expression or a function call that is SQL throughout:
    // `(select login/2 from users limit 1,1)`, `LENGTH(version())`, `( BINARY COS ( 'b')) --`.
    if matches!(t0.kind, Kind::LParen | Kind::Func) {
        let end = (0..a.len)
            .find(|&k| a.comment_after[k])
            .map_or(a.len, |k| k + 1);
        let known_start =
            t0.kind == Kind::LParen || matches!(t0.kw, Kw::SqlFunc | Kw::TimeFunc | Kw::Danger);
        // (up to a comment, or through the tokens kept when the text goes on)
        if known_start && valid_seq(a, 0, end) && has_sql_weight(a, 0, end) {
            let nested = a.toks[1..end]
                .iter()
                .any(|t| sql_specific(view, t) || t.kw == Kw::Select);
            if nested || t0.kw == Kw::TimeFunc {
                fire!(rules, "sqli-statement");
            }
        }
        // A boolean probe as a value: a SQL conditional on a comparison of numbers
        // (`IIF(5=5,1,1/0)`, `MAKE_SET(3=3,7)`), or one in parentheses scaled (`(4=4)*9`).
        let probe = match t0.kind {
            Kind::Func => {
                t0.kw == Kw::SqlFunc
                    && number_condition_end(a, view, 2)
                        .is_some_and(|e| e < a.len && a.toks[e].kind == Kind::Comma)
            }
            _ => number_condition_end(a, view, 1).is_some_and(|e| {
                a.len == e + 3
                    && a.complete
                    && a.toks[e].kind == Kind::RParen
                    && a.toks[e + 1].kind == Kind::Op
                    && a.toks[e + 2].kind == Kind::Num
            }),
        };
        if probe && valid_seq(a, 0, end) {
            fire!(rules, "sqli-constant-condition");
        }
        // `( BINARY ( 'a' OR 'b') )  --`: operators on constants in parentheses, then a comment.
        let ops = a.toks[..end]
            .iter()
            .any(|t| matches!(t.kind, Kind::Logic | Kind::Op | Kind::Cmp));
        if t0.kind == Kind::LParen
            && end < a.len + 1
            && a.comment_after[end - 1]
            && a.trivial_comment_after[end - 1]
            && ops
            && valid_seq(a, 0, end)
        {
            fire!(rules, "sqli-statement");
        }
    }
    let t = &a.toks[0];
    if matches!(t.kw, Kw::Select | Kw::Stmt | Kw::Waitfor) && statement_shape(a, view, 0, true) {
        fire!(rules, "sqli-statement");
    }
    // A procedural block: `BEGIN IF (1=1) THEN DBMS_LOCK.SLEEP(5); END IF; END;`.
    if sql_block(a, view, 0) && a.toks[1..a.len].iter().any(|t| text(view, t) == b"end") {
        fire!(rules, "sqli-statement");
    }
    // A list closed and the statement ended (`x y,;`), then another statement.
    if let Some(k) = (1..a.len.min(9)).find(|&k| a.toks[k].kind == Kind::Semi) {
        // (or a call: `mod(1,2);INSERT INTO ..`)
        let closes = a.toks[k - 1].kind == Kind::Comma
            || a.toks[k - 1].kind == Kind::RParen
                && t0.kind == Kind::Func
                && t0.kw == Kw::SqlFunc
                && valid_seq(a, 0, k);
        // (or the statement is an INSERT with its VALUES: `x; insert into t (a) values (1)`)
        let insert = k + 2 < a.len
            && matches!(text(view, &a.toks[k + 1]), b"insert" | b"replace")
            && values_follow(
                a,
                if a.toks[k + 2].kw == Kw::Into {
                    k + 3
                } else {
                    k + 2
                },
            );
        if insert {
            fire!(rules, "sqli-stacked-query");
        }
        if closes
            && k + 1 < a.len
            && (statement_shape(a, view, k + 1, false) || sql_block(a, view, k + 1))
        {
            fire!(rules, "sqli-stacked-query");
        }
    }
    None
}

/// A value a query quotes (`admin`, `1`, `admin@example.org`, `2020-01-01`): the break-out
/// string `s0` without its quote, short and without spaces or code punctuation.
fn plain_value(view: &[u8], s0: &Tok) -> bool {
    let body = text(view, s0);
    let body = &body[..body.len().saturating_sub(1)];
    !body.is_empty()
        && body.len() <= 64
        && body
            .iter()
            .all(|&b| is_word_byte(b) || matches!(b, b'-' | b'.' | b'@' | b'+' | b':'))
}

/// Clauses that continue the query right after the break-out point `p` (past the boundary
/// tokens a payload closes it with): `WHERE 51=51`, `AS x FROM t`.
fn boundary_clause(view: &[u8], a: &Anchor, p: usize, rules: RuleFilter<'_>) -> Option<Rule> {
    let mut k = p;
    for _ in 0..3 {
        let at = |i: usize| a.toks.get(i).filter(|_| i < a.len);
        let t = at(k)?;
        match t.kw {
            // `1) WHERE 51=51 AND 7=9--`, `` x` WHERE 3=3 ``: a condition the payload adds.
            Kw::Where => {
                let o = operand(a, view, k + 1);
                if o.valid
                    && o.cmp
                    && (constant_comparison(a, k + 1, o.end)
                        || sql_style_comparison(view, a, k + 1, o.end)
                            && valid_seq(a, k + 1, o.end))
                {
                    fire!(rules, "sqli-where-clause");
                }
                return None;
            }
            // `1234 AS "x" FROM t`, `` ` AS `x` FROM ``: the value ends a select list.
            Kw::Clause if text(view, t) == b"as" => {
                let alias = at(k + 1)?;
                if !alias.is_value() || alias.kind == Kind::Num {
                    return None;
                }
                let after = at(k + 2);
                if after.is_some_and(|n| n.kw == Kw::From)
                    && at(k + 3).is_none_or(|n| n.is_value() || n.kind == Kind::LParen)
                {
                    fire!(rules, "sqli-select-list");
                }
                k = skip_rparens(a, k + 2);
            }
            _ => return None,
        }
    }
    None
}

/// Skips the tokens a payload uses to close what the application opened, from `p`: `)`, an
/// alias (`) AS x`), a full-text search's `IN BOOLEAN MODE)`, and in quoted contexts a
/// comparison that completes the application's own (`` x`=`x` ``, `"="x"`).
fn skip_boundary(a: &Anchor, view: &[u8], mut p: usize, quoted: bool) -> usize {
    let word = |i: usize, w: &[u8]| i < a.len && text(view, &a.toks[i]) == w;
    loop {
        let start = p;
        p = skip_rparens(a, p);
        if word(p, b"as") && p + 2 < a.len && a.toks[p + 1].is_value() {
            p += 2;
        }
        if word(p, b"in") && word(p + 1, b"boolean") && word(p + 2, b"mode") {
            p += 3;
        }
        if quoted
            && p + 2 < a.len
            && a.toks[p].kind == Kind::Cmp
            && a.toks[p + 1].is_value()
            && matches!(a.toks[p + 2].kind, Kind::Logic | Kind::Semi)
        {
            p += 2;
        }
        if p == start || p >= a.len {
            return p;
        }
    }
}

/// A procedural block or call as a statement: `BEGIN DBMS_LOCK.SLEEP(5); END`,
/// `CALL REGEXP_SUBSTRING(...)`.
fn sql_block(a: &Anchor, view: &[u8], q: usize) -> bool {
    let at = |i: usize| a.toks.get(i).filter(|_| i < a.len);
    let name = text(view, &a.toks[q]);
    if !matches!(name, b"begin" | b"call") {
        return false;
    }
    // A call, possibly qualified: `f(`, `pkg.f(`.
    let call = |i: usize| {
        at(i).is_some_and(|t| t.kind == Kind::Func)
            || at(i).is_some_and(|t| t.kind == Kind::Word)
                && at(i + 1).is_some_and(|t| t.kind == Kind::Dot)
                && at(i + 2).is_some_and(|t| t.kind == Kind::Func)
    };
    call(q + 1)
        || name == b"begin"
            && at(q + 1).is_some_and(|t| matches!(t.kw, Kw::Stmt | Kw::Select | Kw::SqlFunc))
}

/// The text before the quote reads as prose (`hello '`), so the quote is only a break-out
/// when what follows is unmistakably SQL: AND/OR and a comparison of constants, a SQL
/// function or a subquery, then the end of the text, a comment, or more of the same; or a
/// stacked statement.
fn late_breakout(view: &[u8], a: &Anchor, rules: RuleFilter<'_>) -> Option<Rule> {
    let p = skip_rparens(a, 1);
    let t = a.toks.get(p).filter(|_| p < a.len)?;
    match t.kind {
        Kind::Logic => {
            let o = operand(a, view, p + 1);
            let strong = o.valid
                && (o.cmp && constant_comparison(a, p + 1, o.end) || o.sql_func || o.select);
            if !strong || o.end == 0 {
                return None;
            }
            let end = (o.end..a.len)
                .find(|&k| a.comment_after[k])
                .map_or(a.len, |k| k + 1);
            let ends = a.comment_after[o.end - 1]
                || o.end >= a.len && a.complete
                || o.end < a.len
                    && matches!(a.toks[o.end].kind, Kind::Logic | Kind::Semi)
                    && (end < a.len || a.complete || a.comment_after[end - 1])
                    && valid_seq(a, o.end, end);
            if ends {
                fire!(rules, "sqli-late-breakout");
            }
        }
        Kind::Semi if p + 1 < a.len && statement_shape(a, view, p + 1, true) => {
            fire!(rules, "sqli-late-breakout");
        }
        _ => {}
    }
    None
}

/// `N = M` between plain numbers at token `k` (with `=`, `<>`, `LIKE` or `BETWEEN N AND M`,
/// not a programming language's `==`).
fn number_equality(a: &Anchor, view: &[u8], k: usize) -> bool {
    number_condition_end(a, view, k).is_some()
}

/// The index after the condition of [`number_equality`] at `k`.
fn number_condition_end(a: &Anchor, view: &[u8], k: usize) -> Option<usize> {
    let num = |i: usize| i < a.len && a.toks[i].kind == Kind::Num;
    let word = |i: usize, w: &[u8]| i < a.len && text(view, &a.toks[i]) == w;
    if !num(k) || !num(k + 2) {
        return None;
    }
    match text(view, a.toks.get(k + 1)?) {
        b"=" | b"<>" | b"like" => Some(k + 3),
        b"between" if word(k + 3, b"and") && num(k + 4) => Some(k + 5),
        _ => None,
    }
}

/// A list item a payload adds at `q` (after a comma): a `CASE WHEN`, a SQL conditional on
/// numbers (`IIF(2=2,..)`), a subquery in parentheses, or a procedural block.
fn list_item_probe(a: &Anchor, view: &[u8], q: usize) -> bool {
    let mut k = q;
    while k < a.len && a.toks[k].kind == Kind::LParen {
        k += 1;
    }
    let Some(t) = a.toks.get(k).filter(|_| k < a.len) else {
        return false;
    };
    match text(view, t) {
        b"case" => case_end(a, view, k).is_some(),
        b"begin" => k > q && sql_block(a, view, k),
        b"select" => k > q && statement_shape(a, view, k, false),
        _ => t.kind == Kind::Func && t.kw == Kw::SqlFunc && number_equality(a, view, k + 2),
    }
}
