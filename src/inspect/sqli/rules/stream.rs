//! Stream rules: constructs that are SQL wherever they appear in a text (`UNION SELECT`, time
//! delays, catalog tables, functions that reach outside the database, stacked destructive
//! statements), judged on each token with a short look-back window.

use super::{fire, text, Rule, WINDOW};
use crate::inspect::rules::RuleFilter;
use crate::inspect::sqli::lexer::{is_space, Kind, Lexer, Tok};
use crate::inspect::sqli::vocab::Kw;

/// Can `cur` (after tokens of kinds `prev1`, `prev2`) end a construct [`stream_rule`] knows?
/// Only keywords and a few token kinds end one; anything else matters only right after a `;`.
/// Most tokens cannot, and this cheap test spares them the call.
#[inline]
pub(in crate::inspect::sqli) fn may_end_construct(
    view: &[u8],
    cur: &Tok,
    prev1: Kind,
    prev2: Kind,
) -> bool {
    cur.kw != Kw::None
        || matches!(
            cur.kind,
            Kind::RParen
                | Kind::Comma
                | Kind::Str
                | Kind::OpenStr
                | Kind::Dot
                | Kind::Func
                | Kind::Var
        )
        || (cur.kind == Kind::Other && matches!(view.get(cur.start()), Some(b'\'' | b'"')))
        // A cast's type (`x::int`) and the two-byte PostgreSQL JSON operators.
        || (cur.kind == Kind::Word && cur.start() > 0 && view[cur.start() - 1] == b':')
        || (matches!(cur.kind, Kind::Op | Kind::Cmp)
            && cur.end() - cur.start() >= 2
            && matches!(view.get(cur.start()), Some(b'@' | b'?' | b'#' | b'-' | b'<')))
        || prev1 == Kind::Semi
        || prev2 == Kind::Semi
}

/// Rules that hold wherever the construct appears, for a token that [`may_end_construct`].
/// `w` is a ring buffer whose newest token is at `head`.
pub(in crate::inspect::sqli) fn stream_rule(
    view: &[u8],
    w: &[Tok; WINDOW],
    head: usize,
    seen: usize,
    lx: &mut Lexer<'_>,
    rules: RuleFilter<'_>,
) -> Option<Rule> {
    let back = |k: usize| -> &Tok {
        if k < seen && k < WINDOW {
            &w[(head + WINDOW - k) % WINDOW]
        } else {
            &Tok::NONE
        }
    };
    let cur = back(0);
    if let Some(r) = postgres_rule(view, cur, back(1), back(2), back(3), seen, rules) {
        return Some(r);
    }
    // UNION [ALL|DISTINCT] [(] SELECT
    if cur.kw == Kw::Select {
        let mut k = 1;
        while k < 4
            && (back(k).kind == Kind::LParen || matches!(back(k).kw, Kw::All | Kw::Distinct))
        {
            k += 1;
        }
        if back(k).kw == Kw::Union && back(k).kind == Kind::Word {
            fire!(rules, "sqli-union");
        }
    }
    // A subquery as an operand: `+ (SELECT ...`, `DIV(SELECT`.
    if cur.kw == Kw::Select
        && back(1).kind == Kind::LParen
        && matches!(back(2).kind, Kind::Op | Kind::Cmp | Kind::Logic)
    {
        fire!(rules, "sqli-subquery");
    }
    // T-SQL variable declarations: `declare @s varchar(8000)`.
    if cur.kind == Kind::Var && back(1).kind == Kind::Word && text(view, back(1)) == b"declare" {
        fire!(rules, "sqli-stacked-query");
    }
    // Time delays: SLEEP(n), PG_SLEEP(n), BENCHMARK(n, ...), WAITFOR DELAY '...'.
    if cur.kind == Kind::RParen || cur.kind == Kind::Comma {
        let f = back(3);
        if f.kind == Kind::Func
            && f.kw == Kw::TimeFunc
            && back(2).kind == Kind::LParen
            && matches!(back(1).kind, Kind::Num | Kind::Var | Kind::Word)
            && (cur.kind == Kind::RParen || text(view, f) == b"benchmark")
        {
            let before = back(4);
            let prefix_ok = seen <= 4
                || !matches!(before.kind, Kind::Dot | Kind::Word | Kind::Other)
                || matches!(before.kw, Kw::Select | Kw::Stmt | Kw::Clause | Kw::Where)
                || text(view, before).starts_with(b"dbms_lock");
            let arg_ok = back(1).kind != Kind::Word
                || text(view, back(1)).starts_with(b"_")
                || text(view, back(1)).starts_with(b"[");
            if prefix_ok && arg_ok {
                fire!(rules, "sqli-time-based");
            }
        }
    }
    let quote_start = |t: &Tok| {
        matches!(t.kind, Kind::Str | Kind::OpenStr)
            || t.kind == Kind::Other && matches!(view.get(t.start()), Some(b'\'' | b'"'))
    };
    if quote_start(cur) && back(1).kw == Kw::Delay && back(2).kw == Kw::Waitfor {
        fire!(rules, "sqli-time-based");
    }
    // Catalog tables: INFORMATION_SCHEMA.x, FROM sysobjects, mysql.user, ...
    if cur.kind == Kind::Dot && back(1).kw == Kw::Catalog {
        let name = text(view, back(1));
        let strong = !matches!(name, b"mysql" | b"master" | b"sys" | b"dual");
        // `mysql.user`, `master..sysdatabases`: look at what follows.
        if strong {
            fire!(rules, "sqli-catalog");
        }
        let rest = view.get(cur.end()..).unwrap_or(&[]);
        let rest = rest.strip_prefix(b".").unwrap_or(rest);
        for t in [
            &b"user"[..],
            b"sysdatabases",
            b"sysobjects",
            b"xp_cmdshell",
            b"sys.",
            b"dbo.",
            b"sysxlogins",
            b"syslogins",
        ] {
            if rest.starts_with(t) {
                fire!(rules, "sqli-catalog");
            }
        }
    }
    if cur.kw == Kw::Catalog
        && matches!(back(1).kw, Kw::From)
        && text(view, cur) != b"dual"
        && text(view, cur) != b"mysql"
        && text(view, cur) != b"master"
        && text(view, cur) != b"sys"
    {
        fire!(rules, "sqli-catalog");
    }
    // Functions that reach outside the database.
    if cur.kind == Kind::Func && cur.kw == Kw::Danger {
        let name = text(view, cur);
        let strong = matches!(
            name,
            b"xp_cmdshell"
                | b"load_file"
                | b"sys_eval"
                | b"sys_exec"
                | b"openrowset"
                | b"opendatasource"
                | b"lo_import"
                | b"lo_get"
                | b"pg_read_file"
                | b"extractvalue"
                | b"updatexml"
                | b"name_const"
                | b"gtid_subset"
                | b"sp_oacreate"
        );
        // `load_file(path)` is also a common name in code: only a literal path or an encoded
        // one (`load_file('/etc/passwd')`, `load_file(0x2f...)`) is the MySQL function at work.
        let literal_arg = || {
            let rest = view.get(cur.end()..).unwrap_or(&[]);
            let rest = rest.trim_ascii_start().strip_prefix(b"(").unwrap_or(&[]);
            let rest = rest.trim_ascii_start();
            matches!(rest.first(), Some(b'\'' | b'"'))
                || rest.starts_with(b"0x")
                || rest.starts_with(b"char")
                || rest.starts_with(b"concat")
        };
        if strong && (name != b"load_file" || literal_arg()) {
            fire!(rules, "sqli-dangerous-function");
        }
    }
    if cur.kind == Kind::Func && back(1).kind == Kind::Dot && back(2).kw == Kw::Danger {
        fire!(rules, "sqli-dangerous-function");
    }
    if cur.kw == Kw::Danger && cur.kind == Kind::Word {
        let name = text(view, cur);
        if matches!(name, b"xp_cmdshell" | b"sp_makewebtask" | b"sp_oacreate")
            && matches!(back(1).kw, Kw::Stmt)
        {
            fire!(rules, "sqli-dangerous-function");
        }
    }
    // INTO OUTFILE / DUMPFILE '...'
    if quote_start(cur) && back(1).kw == Kw::Outfile && back(2).kw == Kw::Into {
        fire!(rules, "sqli-outfile");
    }
    // Stacked destructive statements: `; DROP TABLE`, `; SHUTDOWN`, `; EXEC xp_...`.
    if back(1).kind == Kind::Semi || back(2).kind == Kind::Semi {
        let stmt = if back(1).kind == Kind::Semi {
            cur
        } else {
            back(1)
        };
        let after = if back(1).kind == Kind::Semi {
            None
        } else {
            Some(cur)
        };
        let name = text(view, stmt);
        let hit = match (name, after) {
            (b"drop" | b"truncate" | b"alter" | b"create", Some(t)) => t.kw == Kw::Table,
            (b"shutdown", None) => {
                let rest = &view[stmt.end()..];
                rest.iter().all(|&b| is_space(b) || b == b';')
                    || lx.peek(0) == 0
                    || rest.trim_ascii_start().starts_with(b"--")
                    || rest.trim_ascii_start().starts_with(b"with")
                    || rest.trim_ascii_start().starts_with(b"#")
                    || rest.trim_ascii_start().starts_with(b"/*")
            }
            (b"exec" | b"execute", Some(t)) => {
                let n = text(view, t);
                n.starts_with(b"xp_")
                    || n.starts_with(b"sp_")
                    || n == b"master"
                    || n == b"immediate"
                    || t.kind == Kind::LParen
                    || t.kind == Kind::Var
            }
            (b"declare", Some(t)) => t.kind == Kind::Var,
            (b"waitfor", Some(t)) => t.kw == Kw::Delay,
            _ => false,
        };
        if hit && stmt.kind == Kind::Word {
            fire!(rules, "sqli-stacked-query");
        }
    }
    None
}

/// PostgreSQL's own syntax, which no other text writes: a cast right at the injection point
/// (`password::int`, `f(x)::text`) or of a JSON literal (`'{"a":1}'::jsonb`), and JSON
/// operators applied to a JSON literal (`'{"a":1}' ? 'a'`, `'[1]'::jsonb @> '[1]'`,
/// `'{..}' -> '$.a'`).
fn postgres_rule(
    view: &[u8],
    cur: &Tok,
    b1: &Tok,
    b2: &Tok,
    b3: &Tok,
    seen: usize,
    rules: RuleFilter<'_>,
) -> Option<Rule> {
    let is_cast = |t: &Tok| t.kind == Kind::Op && text(view, t) == b"::";
    if cur.kind == Kind::Word && is_cast(b1) && pg_type(text(view, cur)) {
        let castee = matches!(b2.kind, Kind::Str | Kind::Num | Kind::Word | Kind::RParen);
        let rest = view.get(cur.end()..).unwrap_or(&[]).trim_ascii_start();
        let rest = if text(view, cur) == b"double" {
            rest.strip_prefix(b"precision")
                .unwrap_or(b"x")
                .trim_ascii_start()
        } else {
            rest
        };
        // What follows a cast in SQL: an operator, a comparison, `)`, `,`, a comment, the end
        // (a path in code goes on with `::`, `(`, `<`, `;`, `{`).
        let ends = rest.first().is_none_or(|b| b"=<>!+-*/|&#@?%),".contains(b));
        if castee && ends && (seen <= 6 || json_literal(view, b2)) {
            fire!(rules, "sqli-pg-cast");
        }
    }
    let json_op = |t: &Tok| {
        matches!(t.kind, Kind::Op | Kind::Cmp)
            && matches!(
                text(view, t),
                b"->"
                    | b"->>"
                    | b"#>"
                    | b"#>>"
                    | b"#-"
                    | b"@>"
                    | b"<@"
                    | b"?"
                    | b"?|"
                    | b"?&"
                    | b"@?"
                    | b"@@"
            )
    };
    let json_value = |t: &Tok, before: &Tok, before2: &Tok| {
        json_literal(view, t)
            || t.kind == Kind::Word
                && matches!(text(view, t), b"json" | b"jsonb")
                && is_cast(before)
                && json_literal(view, before2)
    };
    // `'{..}' ?| ..`, `'{..}'::jsonb #> ..`
    if json_op(cur) && json_value(b1, b2, b3) {
        fire!(rules, "sqli-json-operator");
    }
    // `'{..}' < '$.c[2].f'`: a JSON literal against a JSON path.
    if matches!(cur.kind, Kind::Str | Kind::OpenStr)
        && matches!(text(view, cur).get(1..3), Some(b"$." | b"$["))
        && matches!(b1.kind, Kind::Op | Kind::Cmp)
        && json_literal(view, b2)
    {
        fire!(rules, "sqli-json-operator");
    }
    None
}

/// A string literal holding a JSON object or array (`'{"a":1}'`, `'[1, 2]'`).
fn json_literal(view: &[u8], t: &Tok) -> bool {
    t.kind == Kind::Str && {
        let body = text(view, t);
        matches!(body.get(1), Some(b'{' | b'['))
            && matches!(body.get(body.len().wrapping_sub(2)), Some(b'}' | b']'))
    }
}

/// PostgreSQL type names a cast names.
fn pg_type(name: &[u8]) -> bool {
    matches!(
        name,
        b"int"
            | b"int2"
            | b"int4"
            | b"int8"
            | b"integer"
            | b"bigint"
            | b"smallint"
            | b"numeric"
            | b"decimal"
            | b"real"
            | b"float"
            | b"float4"
            | b"float8"
            | b"double"
            | b"text"
            | b"varchar"
            | b"char"
            | b"bytea"
            | b"json"
            | b"jsonb"
            | b"jsonpath"
            | b"bool"
            | b"boolean"
            | b"regclass"
            | b"oid"
            | b"inet"
            | b"uuid"
            | b"xml"
            | b"date"
            | b"timestamp"
            | b"interval"
            | b"money"
    )
}
