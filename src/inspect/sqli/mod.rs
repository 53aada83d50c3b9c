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

use super::normalize::Marks;
use super::rules::{RuleFilter, RuleInfo};
use super::wordset::WordSet;
use crate::model::AuditTag;

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
];

/// Tokens kept for the anchored rules.
const ANCHOR_TOKENS: usize = 32;
/// Look-back window of the stream rules.
const WINDOW: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A closed string literal.
    Str,
    /// A string running to the end of the input: the application's own quote closes it.
    OpenStr,
    Num,
    /// `@name`, `@@name`.
    Var,
    /// An identifier or keyword (see [`Kw`]).
    Word,
    /// A word followed by `(`.
    Func,
    /// Arithmetic, bitwise, assignment operators.
    Op,
    /// Comparison operators (also `LIKE`, `IN`, `IS`, ... via keywords).
    Cmp,
    /// `AND`, `OR`, `XOR`, `&&`, `||`.
    Logic,
    /// `NOT`, `!`.
    Not,
    LParen,
    RParen,
    Comma,
    Semi,
    Dot,
    Comment,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kw {
    None,
    Union,
    Select,
    /// A statement that changes or reveals things: INSERT, UPDATE, DELETE, DROP, EXEC, ...
    Stmt,
    From,
    Where,
    Group,
    Order,
    By,
    Having,
    Limit,
    Into,
    Values,
    /// LIKE, RLIKE, REGEXP, IN, IS, BETWEEN, SOUNDS.
    CmpWord,
    /// NULL, TRUE, FALSE: values.
    Const,
    All,
    Distinct,
    Waitfor,
    Delay,
    Table,
    Exists,
    Asc,
    Set,
    Procedure,
    Outfile,
    /// SLEEP, BENCHMARK, PG_SLEEP.
    TimeFunc,
    /// System catalogs: INFORMATION_SCHEMA, SYSOBJECTS, ...
    Catalog,
    /// Functions that reach outside the database.
    Danger,
    /// Common SQL functions and niladic functions (VERSION, USER, CHAR, CONCAT, ...).
    SqlFunc,
    /// Other clause keywords: JOIN, ON, AS, CASE, WHEN, THEN, ...
    Clause,
}

#[derive(Clone, Copy, Debug)]
struct Tok {
    kind: Kind,
    kw: Kw,
    start: usize,
    end: usize,
}

impl Tok {
    const NONE: Tok = Tok {
        kind: Kind::Other,
        kw: Kw::None,
        start: 0,
        end: 0,
    };

    fn is_value(&self) -> bool {
        matches!(self.kind, Kind::Str | Kind::OpenStr | Kind::Num | Kind::Var)
            || (self.kind == Kind::Word
                && matches!(self.kw, Kw::None | Kw::Const | Kw::SqlFunc | Kw::Catalog))
    }

    fn is_cmp(&self) -> bool {
        self.kind == Kind::Cmp || (self.kind == Kind::Word && self.kw == Kw::CmpWord)
    }
}

/// Every SQL word the tokenizer knows, sorted by bytes for binary search.
const KEYWORDS: &[(&[u8], Kind, Kw)] = &[
    (b"@@version", Kind::Word, Kw::SqlFunc),
    (b"abs", Kind::Word, Kw::SqlFunc),
    (b"aes_decrypt", Kind::Word, Kw::SqlFunc),
    (b"aes_encrypt", Kind::Word, Kw::SqlFunc),
    (b"all", Kind::Word, Kw::All),
    (b"all_tab_columns", Kind::Word, Kw::Catalog),
    (b"all_tables", Kind::Word, Kw::Catalog),
    (b"all_users", Kind::Word, Kw::Catalog),
    (b"alter", Kind::Word, Kw::Stmt),
    (b"and", Kind::Logic, Kw::None),
    (b"any", Kind::Word, Kw::SqlFunc),
    (b"as", Kind::Word, Kw::Clause),
    (b"asc", Kind::Word, Kw::Asc),
    (b"ascii", Kind::Word, Kw::SqlFunc),
    (b"avg", Kind::Word, Kw::SqlFunc),
    (b"banner", Kind::Word, Kw::SqlFunc),
    (b"begin", Kind::Word, Kw::Clause),
    (b"benchmark", Kind::Word, Kw::TimeFunc),
    (b"between", Kind::Word, Kw::CmpWord),
    (b"bfilename", Kind::Word, Kw::SqlFunc),
    (b"bin", Kind::Word, Kw::SqlFunc),
    (b"binary", Kind::Op, Kw::None),
    (b"by", Kind::Word, Kw::By),
    (b"call", Kind::Word, Kw::Stmt),
    (b"case", Kind::Word, Kw::Clause),
    (b"cast", Kind::Word, Kw::SqlFunc),
    (b"char", Kind::Word, Kw::SqlFunc),
    (b"char_length", Kind::Word, Kw::SqlFunc),
    (b"charset", Kind::Word, Kw::SqlFunc),
    (b"chr", Kind::Word, Kw::SqlFunc),
    (b"coalesce", Kind::Word, Kw::SqlFunc),
    (b"coercibility", Kind::Word, Kw::SqlFunc),
    (b"collate", Kind::Word, Kw::Clause),
    (b"collation", Kind::Word, Kw::SqlFunc),
    (b"column", Kind::Word, Kw::Table),
    (b"compress", Kind::Word, Kw::SqlFunc),
    (b"concat", Kind::Word, Kw::SqlFunc),
    (b"concat_ws", Kind::Word, Kw::SqlFunc),
    (b"connection_id", Kind::Word, Kw::SqlFunc),
    (b"conv", Kind::Word, Kw::SqlFunc),
    (b"convert", Kind::Word, Kw::SqlFunc),
    (b"cos", Kind::Word, Kw::SqlFunc),
    (b"cot", Kind::Word, Kw::SqlFunc),
    (b"count", Kind::Word, Kw::SqlFunc),
    (b"crc32", Kind::Word, Kw::SqlFunc),
    (b"create", Kind::Word, Kw::Stmt),
    (b"cross", Kind::Word, Kw::Clause),
    (b"ctxsys", Kind::Word, Kw::Danger),
    (b"current_database", Kind::Word, Kw::SqlFunc),
    (b"current_setting", Kind::Word, Kw::SqlFunc),
    (b"current_user", Kind::Word, Kw::SqlFunc),
    (b"database", Kind::Word, Kw::Table),
    (b"database_name", Kind::Word, Kw::SqlFunc),
    (b"db_name", Kind::Word, Kw::SqlFunc),
    (b"dba_users", Kind::Word, Kw::Catalog),
    (b"dbms_lock", Kind::Word, Kw::Danger),
    (b"dbms_pipe", Kind::Word, Kw::Danger),
    (b"dbms_utility", Kind::Word, Kw::SqlFunc),
    (b"dbms_xmlgen", Kind::Word, Kw::Danger),
    (b"declare", Kind::Word, Kw::Stmt),
    (b"decode", Kind::Word, Kw::SqlFunc),
    (b"delay", Kind::Word, Kw::Delay),
    (b"delete", Kind::Word, Kw::Stmt),
    (b"desc", Kind::Word, Kw::Stmt),
    (b"describe", Kind::Word, Kw::Stmt),
    (b"distinct", Kind::Word, Kw::Distinct),
    (b"distinctrow", Kind::Word, Kw::Distinct),
    (b"div", Kind::Op, Kw::None),
    (b"drop", Kind::Word, Kw::Stmt),
    (b"dual", Kind::Word, Kw::Catalog),
    (b"dumpfile", Kind::Word, Kw::Outfile),
    (b"else", Kind::Word, Kw::Clause),
    (b"elt", Kind::Word, Kw::SqlFunc),
    (b"encode", Kind::Word, Kw::SqlFunc),
    (b"end", Kind::Word, Kw::Clause),
    (b"escape", Kind::Word, Kw::Clause),
    (b"exec", Kind::Word, Kw::Stmt),
    (b"execute", Kind::Word, Kw::Stmt),
    (b"exists", Kind::Word, Kw::Exists),
    (b"exp", Kind::Word, Kw::Danger),
    (b"extractvalue", Kind::Word, Kw::Danger),
    (b"false", Kind::Word, Kw::Const),
    (b"floor", Kind::Word, Kw::SqlFunc),
    (b"found_rows", Kind::Word, Kw::SqlFunc),
    (b"from", Kind::Word, Kw::From),
    (b"function", Kind::Word, Kw::Table),
    (b"geometrycollection", Kind::Word, Kw::Danger),
    (b"getdate", Kind::Word, Kw::SqlFunc),
    (b"grant", Kind::Word, Kw::Stmt),
    (b"group", Kind::Word, Kw::Group),
    (b"group_concat", Kind::Word, Kw::SqlFunc),
    (b"gtid_subset", Kind::Word, Kw::Danger),
    (b"handler", Kind::Word, Kw::Stmt),
    (b"having", Kind::Word, Kw::Having),
    (b"hex", Kind::Word, Kw::SqlFunc),
    (b"host_name", Kind::Word, Kw::SqlFunc),
    (b"identified", Kind::Word, Kw::Clause),
    (b"if", Kind::Word, Kw::SqlFunc),
    (b"ifnull", Kind::Word, Kw::SqlFunc),
    (b"iif", Kind::Word, Kw::SqlFunc),
    (b"ilike", Kind::Word, Kw::CmpWord),
    (b"in", Kind::Word, Kw::CmpWord),
    (b"index", Kind::Word, Kw::Table),
    (b"information_schema", Kind::Word, Kw::Catalog),
    (b"inner", Kind::Word, Kw::Clause),
    (b"insert", Kind::Word, Kw::Stmt),
    (b"instr", Kind::Word, Kw::SqlFunc),
    (b"intersect", Kind::Word, Kw::Union),
    (b"into", Kind::Word, Kw::Into),
    (b"is", Kind::Word, Kw::CmpWord),
    (b"isnull", Kind::Word, Kw::SqlFunc),
    (b"join", Kind::Word, Kw::Clause),
    (b"json_keys", Kind::Word, Kw::Danger),
    (b"kill", Kind::Word, Kw::Stmt),
    (b"last_insert_id", Kind::Word, Kw::SqlFunc),
    (b"lcase", Kind::Word, Kw::SqlFunc),
    (b"left", Kind::Word, Kw::SqlFunc),
    (b"len", Kind::Word, Kw::SqlFunc),
    (b"length", Kind::Word, Kw::SqlFunc),
    (b"like", Kind::Word, Kw::CmpWord),
    (b"limit", Kind::Word, Kw::Limit),
    (b"linestring", Kind::Word, Kw::Danger),
    (b"ln", Kind::Word, Kw::SqlFunc),
    (b"lo_export", Kind::Word, Kw::Danger),
    (b"lo_import", Kind::Word, Kw::Danger),
    (b"load", Kind::Word, Kw::Stmt),
    (b"load_extension", Kind::Word, Kw::SqlFunc),
    (b"load_file", Kind::Word, Kw::Danger),
    (b"locate", Kind::Word, Kw::SqlFunc),
    (b"log", Kind::Word, Kw::SqlFunc),
    (b"login", Kind::Word, Kw::Table),
    (b"lower", Kind::Word, Kw::SqlFunc),
    (b"make_set", Kind::Word, Kw::SqlFunc),
    (b"master", Kind::Word, Kw::Catalog),
    (b"max", Kind::Word, Kw::SqlFunc),
    (b"md5", Kind::Word, Kw::SqlFunc),
    (b"merge", Kind::Word, Kw::Stmt),
    (b"mid", Kind::Word, Kw::SqlFunc),
    (b"min", Kind::Word, Kw::SqlFunc),
    (b"mod", Kind::Op, Kw::None),
    (b"msysaccessobjects", Kind::Word, Kw::Catalog),
    (b"msysobjects", Kind::Word, Kw::Catalog),
    (b"multilinestring", Kind::Word, Kw::Danger),
    (b"multipoint", Kind::Word, Kw::Danger),
    (b"multipolygon", Kind::Word, Kw::Danger),
    (b"mysql", Kind::Word, Kw::Catalog),
    (b"name_const", Kind::Word, Kw::Danger),
    (b"natural", Kind::Word, Kw::Clause),
    (b"nchar", Kind::Word, Kw::SqlFunc),
    (b"not", Kind::Not, Kw::None),
    (b"now", Kind::Word, Kw::SqlFunc),
    (b"nowait", Kind::Word, Kw::Clause),
    (b"null", Kind::Word, Kw::Const),
    (b"nullif", Kind::Word, Kw::SqlFunc),
    (b"oct", Kind::Word, Kw::SqlFunc),
    (b"offset", Kind::Word, Kw::Limit),
    (b"on", Kind::Word, Kw::Clause),
    (b"opendatasource", Kind::Word, Kw::Danger),
    (b"openrowset", Kind::Word, Kw::Danger),
    (b"or", Kind::Logic, Kw::None),
    (b"ord", Kind::Word, Kw::SqlFunc),
    (b"order", Kind::Word, Kw::Order),
    (b"outer", Kind::Word, Kw::Clause),
    (b"outfile", Kind::Word, Kw::Outfile),
    (b"pg_backend_pid", Kind::Word, Kw::SqlFunc),
    (b"pg_catalog", Kind::Word, Kw::Catalog),
    (b"pg_read_file", Kind::Word, Kw::Danger),
    (b"pg_shadow", Kind::Word, Kw::Catalog),
    (b"pg_sleep", Kind::Word, Kw::TimeFunc),
    (b"pg_sleep_for", Kind::Word, Kw::SqlFunc),
    (b"pg_user", Kind::Word, Kw::Catalog),
    (b"pi", Kind::Word, Kw::SqlFunc),
    (b"polygon", Kind::Word, Kw::Danger),
    (b"position", Kind::Word, Kw::SqlFunc),
    (b"procedure", Kind::Word, Kw::Procedure),
    (b"quote", Kind::Word, Kw::SqlFunc),
    (b"rand", Kind::Word, Kw::SqlFunc),
    (b"randomblob", Kind::Word, Kw::TimeFunc),
    (b"regexp", Kind::Word, Kw::CmpWord),
    (b"rename", Kind::Word, Kw::Stmt),
    (b"replace", Kind::Word, Kw::Stmt),
    (b"reverse", Kind::Word, Kw::SqlFunc),
    (b"revoke", Kind::Word, Kw::Stmt),
    (b"right", Kind::Word, Kw::SqlFunc),
    (b"rlike", Kind::Word, Kw::CmpWord),
    (b"row_count", Kind::Word, Kw::SqlFunc),
    (b"rowid", Kind::Word, Kw::SqlFunc),
    (b"rownum", Kind::Word, Kw::SqlFunc),
    (b"schema", Kind::Word, Kw::Table),
    (b"select", Kind::Word, Kw::Select),
    (b"session_user", Kind::Word, Kw::SqlFunc),
    (b"set", Kind::Word, Kw::Set),
    (b"sha1", Kind::Word, Kw::SqlFunc),
    (b"show", Kind::Word, Kw::Stmt),
    (b"shutdown", Kind::Word, Kw::Stmt),
    (b"similar", Kind::Word, Kw::CmpWord),
    (b"sin", Kind::Word, Kw::SqlFunc),
    (b"sleep", Kind::Word, Kw::TimeFunc),
    (b"soundex", Kind::Word, Kw::SqlFunc),
    (b"sounds", Kind::Word, Kw::CmpWord),
    (b"sp_addlogin", Kind::Word, Kw::Danger),
    (b"sp_addsrvrolemember", Kind::Word, Kw::Danger),
    (b"sp_execute", Kind::Word, Kw::Danger),
    (b"sp_executesql", Kind::Word, Kw::Danger),
    (b"sp_makewebtask", Kind::Word, Kw::Danger),
    (b"sp_oacreate", Kind::Word, Kw::Danger),
    (b"sp_password", Kind::Word, Kw::Danger),
    (b"sqlite_master", Kind::Word, Kw::Catalog),
    (b"sqlite_schema", Kind::Word, Kw::Catalog),
    (b"sqlite_version", Kind::Word, Kw::SqlFunc),
    (b"sqrt", Kind::Word, Kw::SqlFunc),
    (b"strcmp", Kind::Word, Kw::SqlFunc),
    (b"substr", Kind::Word, Kw::SqlFunc),
    (b"substring", Kind::Word, Kw::SqlFunc),
    (b"substring_index", Kind::Word, Kw::SqlFunc),
    (b"sum", Kind::Word, Kw::SqlFunc),
    (b"sys", Kind::Word, Kw::Catalog),
    (b"sys_eval", Kind::Word, Kw::Danger),
    (b"sys_exec", Kind::Word, Kw::Danger),
    (b"syscat", Kind::Word, Kw::Catalog),
    (b"syscolumns", Kind::Word, Kw::Catalog),
    (b"sysdatabases", Kind::Word, Kw::Catalog),
    (b"sysdate", Kind::Word, Kw::SqlFunc),
    (b"sysdummy1", Kind::Word, Kw::Catalog),
    (b"sysibm", Kind::Word, Kw::Catalog),
    (b"sysobjects", Kind::Word, Kw::Catalog),
    (b"system_user", Kind::Word, Kw::SqlFunc),
    (b"sysusers", Kind::Word, Kw::Catalog),
    (b"table", Kind::Word, Kw::Table),
    (b"tan", Kind::Word, Kw::SqlFunc),
    (b"then", Kind::Word, Kw::Clause),
    (b"time", Kind::Word, Kw::Delay),
    (b"to_char", Kind::Word, Kw::SqlFunc),
    (b"to_number", Kind::Word, Kw::SqlFunc),
    (b"top", Kind::Word, Kw::Limit),
    (b"trigger", Kind::Word, Kw::Table),
    (b"true", Kind::Word, Kw::Const),
    (b"truncate", Kind::Word, Kw::Stmt),
    (b"ucase", Kind::Word, Kw::SqlFunc),
    (b"uncompress", Kind::Word, Kw::SqlFunc),
    (b"unhex", Kind::Word, Kw::SqlFunc),
    (b"unicode", Kind::Word, Kw::SqlFunc),
    (b"union", Kind::Word, Kw::Union),
    (b"unknown", Kind::Word, Kw::Const),
    (b"update", Kind::Word, Kw::Stmt),
    (b"updatexml", Kind::Word, Kw::Danger),
    (b"upper", Kind::Word, Kw::SqlFunc),
    (b"use", Kind::Word, Kw::Stmt),
    (b"user", Kind::Word, Kw::Table),
    (b"user_name", Kind::Word, Kw::SqlFunc),
    (b"user_tab_columns", Kind::Word, Kw::Catalog),
    (b"user_tables", Kind::Word, Kw::Catalog),
    (b"using", Kind::Word, Kw::Clause),
    (b"utl_http", Kind::Word, Kw::Danger),
    (b"utl_inaddr", Kind::Word, Kw::Danger),
    (b"utl_raw", Kind::Word, Kw::SqlFunc),
    (b"uuid", Kind::Word, Kw::SqlFunc),
    (b"v$version", Kind::Word, Kw::Catalog),
    (b"values", Kind::Word, Kw::Values),
    (b"version", Kind::Word, Kw::SqlFunc),
    (b"view", Kind::Word, Kw::Table),
    (b"waitfor", Kind::Word, Kw::Waitfor),
    (b"when", Kind::Word, Kw::Clause),
    (b"where", Kind::Word, Kw::Where),
    (b"with", Kind::Word, Kw::Clause),
    (b"xmltype", Kind::Word, Kw::Danger),
    (b"xor", Kind::Logic, Kw::None),
    (b"xp_cmdshell", Kind::Word, Kw::Danger),
    (b"xp_dirtree", Kind::Word, Kw::Danger),
    (b"xp_fileexist", Kind::Word, Kw::Danger),
    (b"xp_regread", Kind::Word, Kw::Danger),
];

/// Hashed index over [`KEYWORDS`].
static KEYWORD_SET: WordSet<(&[u8], Kind, Kw)> = WordSet::with_key(KEYWORDS, |e| e.0);

fn classify(word: &[u8]) -> (Kind, Kw) {
    if word.len() > 24 || word.len() < 2 {
        return (Kind::Word, Kw::None);
    }
    match KEYWORD_SET.get(word) {
        Some(&(_, kind, kw)) => (kind, kw),
        None => (Kind::Word, Kw::None),
    }
}

/// Byte classes of the tokenizer: bit 1 = word byte, bit 2 = space.
static BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
            t[b] |= 1;
        }
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0) {
            t[b] |= 2;
        }
        b += 1;
    }
    t
};

fn is_word_byte(b: u8) -> bool {
    BYTE_CLASS[usize::from(b)] & 1 != 0
}

fn is_space(b: u8) -> bool {
    BYTE_CLASS[usize::from(b)] & 2 != 0
}

/// Where tokenizing starts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Context {
    /// As-is.
    Bare,
    /// Inside a string literal opened by the application with this quote.
    Quoted(u8),
    /// Quotes are plain punctuation (no string literals at all).
    Agnostic,
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
    /// Inside a MySQL `/*! ... */` executable comment.
    in_exec_comment: bool,
    /// Pending context string (consumed by the first call).
    ctx: Context,
}

impl<'a> Lexer<'a> {
    fn new(s: &'a [u8], ctx: Context) -> Self {
        Lexer {
            s,
            i: 0,
            in_exec_comment: false,
            ctx,
        }
    }

    fn peek(&self, k: usize) -> u8 {
        self.s.get(self.i + k).copied().unwrap_or(0)
    }

    fn tok(&self, kind: Kind, kw: Kw, start: usize) -> Tok {
        Tok {
            kind,
            kw,
            start,
            end: self.i,
        }
    }

    /// Reads a string body whose opening quote is already consumed.
    fn string_body(&mut self, q: u8, backslash_escapes: bool, start: usize) -> Tok {
        let n = self.s.len();
        while self.i < n {
            let c = self.s[self.i];
            if c == b'\\' && backslash_escapes {
                self.i += 2;
                continue;
            }
            if c == q {
                if self.peek(1) == q && backslash_escapes {
                    // Doubled quote inside a literal.
                    self.i += 2;
                    continue;
                }
                self.i += 1;
                return self.tok(Kind::Str, Kw::None, start);
            }
            self.i += 1;
        }
        self.i = n;
        self.tok(Kind::OpenStr, Kw::None, start)
    }

    fn next_tok(&mut self) -> Option<Tok> {
        if let Context::Quoted(q) = self.ctx {
            self.ctx = Context::Bare;
            // The break-out string: no escapes (a payload's backslash is meant to eat the
            // application's escaping backslash).
            return Some(self.string_body(q, false, 0));
        }
        let n = self.s.len();
        loop {
            while self.i < n && is_space(self.s[self.i]) {
                self.i += 1;
            }
            if self.i >= n {
                return None;
            }
            if self.in_exec_comment && self.s[self.i] == b'*' && self.peek(1) == b'/' {
                self.in_exec_comment = false;
                self.i += 2;
                continue;
            }
            break;
        }
        let start = self.i;
        let c = self.s[self.i];
        let c1 = self.peek(1);
        self.i += 1;
        let t = match c {
            b'\'' | b'"' if self.ctx == Context::Agnostic => self.tok(Kind::Other, Kw::None, start),
            b'\'' | b'"' => self.string_body(c, true, start),
            b'`' => {
                // Quoted identifier.
                while self.i < n && self.s[self.i] != b'`' {
                    self.i += 1;
                }
                self.i = (self.i + 1).min(n);
                self.tok(Kind::Word, Kw::None, start)
            }
            b'0'..=b'9' => self.number(start),
            b'.' if c1.is_ascii_digit() => self.number(start),
            b'.' => self.tok(Kind::Dot, Kw::None, start),
            b'@' => {
                while self.i < n && (is_word_byte(self.s[self.i]) || self.s[self.i] == b'@') {
                    self.i += 1;
                }
                self.tok(Kind::Var, Kw::None, start)
            }
            b'(' => self.tok(Kind::LParen, Kw::None, start),
            b')' => self.tok(Kind::RParen, Kw::None, start),
            b',' => self.tok(Kind::Comma, Kw::None, start),
            b';' => self.tok(Kind::Semi, Kw::None, start),
            b'#' => self.line_comment(start),
            b'-' if c1 == b'-' => self.line_comment(start),
            b'/' if c1 == b'*' => {
                self.i += 1;
                if self.peek(0) == b'!' {
                    // MySQL executable comment: skip `!` and a version number, tokenize the body.
                    self.i += 1;
                    while self.i < n && self.s[self.i].is_ascii_digit() {
                        self.i += 1;
                    }
                    self.in_exec_comment = true;
                    return self.next_tok();
                }
                while self.i < n && !(self.s[self.i] == b'*' && self.peek(1) == b'/') {
                    self.i += 1;
                }
                self.i = (self.i + 2).min(n);
                self.tok(Kind::Comment, Kw::None, start)
            }
            b'&' if c1 == b'&' => {
                self.i += 1;
                self.tok(Kind::Logic, Kw::None, start)
            }
            b'|' if c1 == b'|' => {
                self.i += 1;
                self.tok(Kind::Logic, Kw::None, start)
            }
            b'=' => {
                if c1 == b'=' {
                    self.i += 1;
                }
                self.tok(Kind::Cmp, Kw::None, start)
            }
            b'<' => {
                if c1 == b'=' {
                    self.i += 1;
                    if self.peek(0) == b'>' {
                        self.i += 1;
                    }
                    self.tok(Kind::Cmp, Kw::None, start)
                } else if c1 == b'>' {
                    self.i += 1;
                    self.tok(Kind::Cmp, Kw::None, start)
                } else if c1 == b'<' {
                    self.i += 1;
                    self.tok(Kind::Op, Kw::None, start)
                } else {
                    self.tok(Kind::Cmp, Kw::None, start)
                }
            }
            b'>' => {
                if c1 == b'=' {
                    self.i += 1;
                    self.tok(Kind::Cmp, Kw::None, start)
                } else if c1 == b'>' {
                    self.i += 1;
                    self.tok(Kind::Op, Kw::None, start)
                } else {
                    self.tok(Kind::Cmp, Kw::None, start)
                }
            }
            b'!' => {
                if matches!(c1, b'=' | b'<' | b'>') {
                    self.i += 1;
                    self.tok(Kind::Cmp, Kw::None, start)
                } else {
                    self.tok(Kind::Not, Kw::None, start)
                }
            }
            b':' if c1 == b'=' || c1 == b':' => {
                self.i += 1;
                self.tok(Kind::Op, Kw::None, start)
            }
            b'*' => self.tok(Kind::Op, Kw::All, start),
            b'+' | b'-' | b'/' | b'%' | b'^' | b'|' | b'&' | b'~' => {
                self.tok(Kind::Op, Kw::None, start)
            }
            b'[' => {
                // MSSQL quoted identifier when it closes on the same line.
                let mut j = self.i;
                while j < n && j - self.i < 128 && !matches!(self.s[j], b']' | b'\n') {
                    j += 1;
                }
                if j < n && self.s[j] == b']' && j > self.i {
                    self.i = j + 1;
                    self.tok(Kind::Word, Kw::None, start)
                } else {
                    self.tok(Kind::Other, Kw::None, start)
                }
            }
            c if is_word_byte(c) => {
                while self.i < n && is_word_byte(self.s[self.i]) {
                    self.i += 1;
                }
                self.word(start)
            }
            _ => self.tok(Kind::Other, Kw::None, start),
        };
        Some(t)
    }

    fn line_comment(&mut self, start: usize) -> Tok {
        let n = self.s.len();
        while self.i < n && self.s[self.i] != b'\n' {
            self.i += 1;
        }
        self.tok(Kind::Comment, Kw::None, start)
    }

    fn number(&mut self, start: usize) -> Tok {
        let n = self.s.len();
        let s = self.s;
        if s[start] == b'0' && matches!(self.peek(0), b'x' | b'b') {
            self.i += 1;
            while self.i < n && s[self.i].is_ascii_hexdigit() {
                self.i += 1;
            }
        } else {
            while self.i < n && (s[self.i].is_ascii_digit() || s[self.i] == b'.') {
                self.i += 1;
            }
            if self.i < n && s[self.i] == b'e' {
                let save = self.i;
                self.i += 1;
                if self.i < n && matches!(s[self.i], b'+' | b'-') {
                    self.i += 1;
                }
                if self.i < n && s[self.i].is_ascii_digit() {
                    while self.i < n && s[self.i].is_ascii_digit() {
                        self.i += 1;
                    }
                } else {
                    self.i = save;
                }
            }
        }
        if self.i < n && is_word_byte(s[self.i]) && s[self.i] != b'$' {
            // `86union`, `1and`: MySQL ends the number where a keyword starts.
            let num_end = self.i;
            let mut k = self.i;
            while k < n && is_word_byte(s[k]) {
                k += 1;
            }
            let (kind, kw) = classify(&s[num_end..k]);
            if kind == Kind::Logic || matches!(kw, Kw::Union | Kw::Select | Kw::From | Kw::Order) {
                self.i = num_end;
                return self.tok(Kind::Num, Kw::None, start);
            }
            // `8h`, `109m`, `1e`: a bareword, not a number.
            while self.i < n && is_word_byte(s[self.i]) {
                self.i += 1;
            }
            return self.tok(Kind::Word, Kw::None, start);
        }
        self.tok(Kind::Num, Kw::None, start)
    }

    fn word(&mut self, start: usize) -> Tok {
        let (kind, kw) = classify(&self.s[start..self.i]);
        if kind != Kind::Word {
            return self.tok(kind, kw, start);
        }
        // A function call: `(` right after, or after spaces for names SQL knows.
        let mut j = self.i;
        let known = matches!(kw, Kw::TimeFunc | Kw::Danger | Kw::SqlFunc);
        if known {
            while j < self.s.len() && is_space(self.s[j]) {
                j += 1;
            }
        }
        if self.s.get(j) == Some(&b'(') && !matches!(kw, Kw::Union | Kw::Select) {
            return self.tok(Kind::Func, kw, start);
        }
        self.tok(Kind::Word, kw, start)
    }
}

/// The first significant tokens after a context was applied, with comment information.
struct Anchor {
    toks: [Tok; ANCHOR_TOKENS],
    /// `comment_after[k]`: a comment directly follows token k.
    comment_after: [bool; ANCHOR_TOKENS],
    /// `trivial_comment_after[k]`: that comment says nothing (`--`, `#`, `/**/`, `-- -`).
    trivial_comment_after: [bool; ANCHOR_TOKENS],
    len: usize,
    /// The whole input fit (no significant token after the last one kept).
    complete: bool,
}

/// A rule id (`sqli-union`, ...).
type Rule = &'static str;

/// Runs every context over `view` (whose marks are `marks`); returns the first rule that fires.
/// Runs the detector with the rules `rules` allows.
pub fn detect(view: &[u8], marks: Marks, rules: RuleFilter<'_>) -> Option<Rule> {
    detect_first(view, marks).and_then(|rule| rules.fire(rule))
}

fn detect_first(view: &[u8], marks: Marks) -> Option<Rule> {
    if view.is_empty() {
        return None;
    }
    // Long texts: one pass that reads quotes as plain punctuation finds the stream constructs
    // wherever the quotes fall, and the contexts only look at how the text starts. Three full
    // passes would cost three times as much for nothing the anchored rules could use.
    let long = view.len() > LONG_VIEW;
    if long {
        if let Some(r) = run(view, Context::Agnostic, Mode::StreamOnly) {
            return Some(r);
        }
    }
    let mode = if long { Mode::AnchorOnly } else { Mode::Full };
    if let Some(r) = run(view, Context::Bare, mode) {
        return Some(r);
    }
    for (q, present) in [(b'\'', marks.has(b'\'')), (b'"', marks.has(b'"'))] {
        if present {
            if let Some(r) = run(view, Context::Quoted(q), mode) {
                return Some(r);
            }
        }
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

fn run(view: &[u8], ctx: Context, mode: Mode) -> Option<Rule> {
    let mut lx = Lexer::new(view, ctx);
    let mut anchor = Anchor {
        toks: [Tok::NONE; ANCHOR_TOKENS],
        comment_after: [false; ANCHOR_TOKENS],
        trivial_comment_after: [false; ANCHOR_TOKENS],
        len: 0,
        complete: true,
    };
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
            if let Some(r) = stream_rule(view, &win, head, seen, &mut lx) {
                return Some(r);
            }
        }
    }
    if mode == Mode::StreamOnly {
        return None;
    }
    anchored(view, &anchor, ctx)
}

fn text<'a>(view: &'a [u8], t: &Tok) -> &'a [u8] {
    view.get(t.start..t.end).unwrap_or(&[])
}

/// Can `cur` (after tokens of kinds `prev1`, `prev2`) end a construct [`stream_rule`] knows?
/// Only keywords and a few token kinds end one; anything else matters only right after a `;`.
/// Most tokens cannot, and this cheap test spares them the call.
#[inline]
fn may_end_construct(view: &[u8], cur: &Tok, prev1: Kind, prev2: Kind) -> bool {
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
        || (cur.kind == Kind::Other && matches!(view.get(cur.start), Some(b'\'' | b'"')))
        || prev1 == Kind::Semi
        || prev2 == Kind::Semi
}

/// Rules that hold wherever the construct appears, for a token that [`may_end_construct`].
/// `w` is a ring buffer whose newest token is at `head`.
fn stream_rule(
    view: &[u8],
    w: &[Tok; WINDOW],
    head: usize,
    seen: usize,
    lx: &mut Lexer<'_>,
) -> Option<Rule> {
    let back = |k: usize| -> &Tok {
        if k < seen && k < WINDOW {
            &w[(head + WINDOW - k) % WINDOW]
        } else {
            &Tok::NONE
        }
    };
    let cur = back(0);
    // UNION [ALL|DISTINCT] [(] SELECT
    if cur.kw == Kw::Select {
        let mut k = 1;
        while k < 4
            && (back(k).kind == Kind::LParen || matches!(back(k).kw, Kw::All | Kw::Distinct))
        {
            k += 1;
        }
        if back(k).kw == Kw::Union && back(k).kind == Kind::Word {
            return Some("sqli-union");
        }
    }
    // A subquery as an operand: `+ (SELECT ...`, `DIV(SELECT`.
    if cur.kw == Kw::Select
        && back(1).kind == Kind::LParen
        && matches!(back(2).kind, Kind::Op | Kind::Cmp | Kind::Logic)
    {
        return Some("sqli-subquery");
    }
    // T-SQL variable declarations: `declare @s varchar(8000)`.
    if cur.kind == Kind::Var && back(1).kind == Kind::Word && text(view, back(1)) == b"declare" {
        return Some("sqli-stacked-query");
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
                return Some("sqli-time-based");
            }
        }
    }
    let quote_start = |t: &Tok| {
        matches!(t.kind, Kind::Str | Kind::OpenStr)
            || t.kind == Kind::Other && matches!(view.get(t.start), Some(b'\'' | b'"'))
    };
    if quote_start(cur) && back(1).kw == Kw::Delay && back(2).kw == Kw::Waitfor {
        return Some("sqli-time-based");
    }
    // Catalog tables: INFORMATION_SCHEMA.x, FROM sysobjects, mysql.user, ...
    if cur.kind == Kind::Dot && back(1).kw == Kw::Catalog {
        let name = text(view, back(1));
        let strong = !matches!(name, b"mysql" | b"master" | b"sys" | b"dual");
        // `mysql.user`, `master..sysdatabases`: look at what follows.
        if strong {
            return Some("sqli-catalog");
        }
        let rest = view.get(cur.end..).unwrap_or(&[]);
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
                return Some("sqli-catalog");
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
        return Some("sqli-catalog");
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
            let rest = view.get(cur.end..).unwrap_or(&[]);
            let rest = rest.trim_ascii_start().strip_prefix(b"(").unwrap_or(&[]);
            let rest = rest.trim_ascii_start();
            matches!(rest.first(), Some(b'\'' | b'"'))
                || rest.starts_with(b"0x")
                || rest.starts_with(b"char")
                || rest.starts_with(b"concat")
        };
        if strong && (name != b"load_file" || literal_arg()) {
            return Some("sqli-dangerous-function");
        }
    }
    if cur.kind == Kind::Func && back(1).kind == Kind::Dot && back(2).kw == Kw::Danger {
        return Some("sqli-dangerous-function");
    }
    if cur.kw == Kw::Danger && cur.kind == Kind::Word {
        let name = text(view, cur);
        if matches!(name, b"xp_cmdshell" | b"sp_makewebtask" | b"sp_oacreate")
            && matches!(back(1).kw, Kw::Stmt)
        {
            return Some("sqli-dangerous-function");
        }
    }
    // INTO OUTFILE / DUMPFILE '...'
    if quote_start(cur) && back(1).kw == Kw::Outfile && back(2).kw == Kw::Into {
        return Some("sqli-outfile");
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
                let rest = &view[stmt.end..];
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
            return Some("sqli-stacked-query");
        }
    }
    None
}

/// Skips `)` tokens from `p`.
fn skip_rparens(a: &Anchor, mut p: usize) -> usize {
    while p < a.len && a.toks[p].kind == Kind::RParen {
        p += 1;
    }
    p
}

/// Parses an arithmetic expression (values, unary and binary arithmetic operators, balanced
/// parentheses, function calls) from `p`; returns the index after it and whether it contained a
/// number.
fn arith_expr(a: &Anchor, mut p: usize) -> Option<(usize, bool, usize)> {
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

fn is_unary(t: &Tok) -> bool {
    t.kind == Kind::Op && t.end == t.start + 1
}

/// What a boolean operand after AND/OR looks like.
#[derive(Default, Debug)]
struct Operand {
    cmp: bool,
    func: bool,
    select: bool,
    values: usize,
    /// Only one value, then the end / a comment / `;` / `)` / a logic operator.
    lone_value: bool,
    lone_kind_strong: bool,
    /// A function only SQL has (not `len(` or `max(`, which code calls all the time).
    sql_func: bool,
    /// The lone value is followed by a clause keyword (`1 or 1 group by ...`).
    before_clause: bool,
    valid: bool,
    end: usize,
}

fn operand(a: &Anchor, view: &[u8], p: usize) -> Operand {
    let mut o = Operand::default();
    let mut q = p;
    let mut expect_value = true;
    let mut depth = 0i32;
    let mut last_value_idx = usize::MAX;
    while q < a.len {
        let t = &a.toks[q];
        match t.kind {
            Kind::Logic | Kind::Semi if depth <= 0 && !expect_value => break,
            Kind::Comma if depth <= 0 => break,
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
fn statement_shape(a: &Anchor, view: &[u8], p: usize, strict: bool) -> bool {
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
                || (n.kind == Kind::Num && !strict);
            if !listish {
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
                return end_after(k) || n.kind == Kind::Var || n.kind == Kind::Func;
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
                }
                b"declare" => n.kind == Kind::Var,
                b"insert" | b"replace" => n.kw == Kw::Into,
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
                b"grant" | b"revoke" => !strict && n.kind == Kind::Word,
                _ => false,
            }
        }
        Kw::Set => next.is_some_and(|n| n.kind == Kind::Var) && next2.is_some_and(|t| t.is_cmp()),
        _ => false,
    }
}

/// Token classes for the adjacency check.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
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

fn class(t: &Tok) -> Class {
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
fn valid_seq(a: &Anchor, from: usize, to: usize) -> bool {
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
fn has_sql_weight(a: &Anchor, from: usize, to: usize) -> bool {
    a.toks[from.min(to).min(a.len)..to.min(a.len)]
        .iter()
        .any(|t| {
            (t.kind == Kind::Func && matches!(t.kw, Kw::SqlFunc | Kw::TimeFunc | Kw::Danger))
                || t.kind == Kind::Var
                || matches!(t.kw, Kw::Select | Kw::Union)
        })
}

/// Rules anchored at the break-out point.
fn anchored(view: &[u8], a: &Anchor, ctx: Context) -> Option<Rule> {
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
        if before_quote.last().is_some_and(|&b| is_space(b))
            && !before_quote.iter().all(|&b| is_space(b))
        {
            return None;
        }
        // Nor is a line of code (`f(r'`, `a[0] == '`, `worker.send('`).
        if before_quote
            .iter()
            .any(|&b| matches!(b, b'(' | b'[' | b'{' | b',' | b';'))
        {
            return None;
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
                return Some("sqli-comment-truncation");
            }
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
                return bare_statement(view, a);
            }
        } else if !matches!(a.toks[0].kind, Kind::Logic | Kind::Semi | Kind::RParen)
            && a.toks[0].kw != Kw::Union
        {
            return bare_statement(view, a);
        }
        bare_prefix = p > 0;
        p = skip_rparens(a, p);
    }
    if p >= a.len {
        return None;
    }
    let t = a.toks[p];
    if quoted {
        if let Some(r) = breakout_expression(a, view, p) {
            return Some(r);
        }
    }
    match t.kind {
        Kind::Logic => {
            let o = operand(a, view, p + 1);
            // A lone number after AND/OR (`1 or 1`) needs a comment to end the query in the bare
            // context: `1950 or 1960` is prose.
            let strong_lone = o.lone_value
                && o.lone_kind_strong
                && (quoted
                    || o.before_clause
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
                return Some("sqli-tautology");
            }
            if o.lone_value && quoted && o.values == 1 {
                // `' or 'x` closed by the application: weak alone, strong when a comment follows.
                let last = o.end.saturating_sub(1).min(a.len - 1);
                if a.comment_after[last] {
                    return Some("sqli-tautology");
                }
            }
        }
        Kind::Semi => {
            let q = p + 1;
            if q < a.len
                && (statement_shape(a, view, q, false)
                    || a.toks[q].kw == Kw::Select
                    || a.toks[q].kind == Kind::Func
                        && matches!(a.toks[q].kw, Kw::SqlFunc | Kw::TimeFunc | Kw::Danger))
            {
                return Some("sqli-stacked-query");
            }
        }
        Kind::Word => match t.kw {
            Kw::Order | Kw::Group if order_by_probe(a, p, quoted) => {
                return Some("sqli-order-by");
            }
            Kw::Having => {
                let o = operand(a, view, p + 1);
                if o.valid && o.cmp {
                    return Some("sqli-tautology");
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
                return Some("sqli-union");
            }
            Kw::From
                if (quoted || p > 0)
                    && a.toks.get(p + 1).is_some_and(|n| n.is_value())
                    && a.toks.get(p + 2).is_some_and(|n| {
                        p + 2 < a.len
                            && matches!(n.kw, Kw::Where | Kw::Limit | Kw::Group | Kw::Order)
                    }) =>
            {
                return Some("sqli-clause");
            }
            Kw::Limit | Kw::Procedure | Kw::Into
                if (quoted || p > 0)
                    && a.toks.get(p + 1).is_some_and(|n| {
                        n.kind == Kind::Num || n.kw == Kw::Outfile || text(view, n) == b"analyse"
                    }) =>
            {
                return Some("sqli-clause");
            }
            Kw::Select | Kw::Stmt | Kw::Waitfor | Kw::Set
                if (quoted || p > 0) && statement_shape(a, view, p, false) =>
            {
                return Some("sqli-stacked-query");
            }
            _ => {}
        },
        Kind::Op | Kind::Cmp if quoted => {
            // `'=0--`, `' - 1 != 2 '`, `'+if(benchmark(...))+'`: the break-out string used as
            // an operand.
            let o = operand_after_op(a, p);
            if o {
                return Some("sqli-expression");
            }
        }
        Kind::Comma if quoted => {
            // `'),NULL,... waitfor` handled by stream rules; a select list breakout:
            // `', (select ...))`
            let mut k = p + 1;
            while k < a.len && k < p + 10 {
                if a.toks[k].kw == Kw::Select {
                    return Some("sqli-expression");
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
fn breakout_expression(a: &Anchor, view: &[u8], p: usize) -> Option<Rule> {
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
        if view.get(last.start) != Some(&ctx_quote) {
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
    if open_end && view.get(last.start + 1).is_some_and(|&b| is_space(b)) && !strong {
        return None;
    }
    // Prose quotes a word: ` "LIKE" STAMP`, `SMALL "&" SIGN`. A payload's break-out value and
    // its final string do not both touch spaces, and a prose-like prefix needs real SQL.
    let s0_spaced = s0
        .iter()
        .skip_while(|&&b| is_space(b))
        .any(|&b| is_space(b));
    if s0_spaced {
        let final_spaced = open_end && view.get(last.start + 1).is_some_and(|&b| is_space(b));
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
        return Some("sqli-expression");
    }
    None
}

/// The quote that closes the break-out string `s0` (its last byte), or 0.
fn quote_of(view: &[u8], s0: &Tok) -> u8 {
    match view.get(s0.end.wrapping_sub(1)) {
        Some(&q @ (b'\'' | b'"')) if s0.end > 0 => q,
        _ => 0,
    }
}

/// A comparison written the SQL way rather than the way programming languages write it: `=` or
/// `<>` rather than `==`/`!=`, between plain names rather than `self.attr` (`or a=a`, `or x=y--`).
fn sql_style_comparison(view: &[u8], a: &Anchor, from: usize, to: usize) -> bool {
    let to = to.min(a.len);
    let toks = &a.toks[from.min(to)..to];
    toks.iter().any(|t| t.is_cmp())
        && !toks.iter().any(|t| {
            t.kind == Kind::Dot || t.kind == Kind::Cmp && matches!(text(view, t), b"==" | b"!=")
        })
}

/// A call of a function only SQL has: the time and out-of-database functions and the SQL
/// functions whose names programming languages do not also use.
fn sql_specific(view: &[u8], t: &Tok) -> bool {
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
fn constant_comparison(a: &Anchor, from: usize, to: usize) -> bool {
    let toks = &a.toks[from.min(to).min(a.len)..to.min(a.len)];
    let has_cmp = toks.iter().any(|t| t.kind == Kind::Cmp);
    // Function results count as constants: `2947=LIKE(...)` is a probe, not a question.
    let constants_only = toks.iter().all(|t| {
        matches!(
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
        )
    });
    has_cmp && constants_only && toks.iter().any(|t| matches!(t.kind, Kind::Num | Kind::Str))
}

/// `ORDER BY n` / `GROUP BY x` right after the break-out point.
fn order_by_probe(a: &Anchor, p: usize, quoted: bool) -> bool {
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
fn operand_after_op(a: &Anchor, p: usize) -> bool {
    for t in &a.toks[p.min(a.len)..a.len] {
        match t.kind {
            Kind::Op | Kind::Not | Kind::Cmp | Kind::LParen => {}
            Kind::Func => return matches!(t.kw, Kw::TimeFunc | Kw::Danger | Kw::SqlFunc),
            _ => return false,
        }
    }
    false
}

/// The bare context when the text does not start with a value: a statement of its own
/// (`select @@version`, `; drop table x`, `waitfor delay '0:0:5'`).
fn bare_statement(view: &[u8], a: &Anchor) -> Option<Rule> {
    // A clause continuing the query: ` ORDER BY 3`, ` WHERE 1=1 AND 1=0#`, ` HAVING 1=1--`.
    let t0 = &a.toks[0];
    match t0.kw {
        Kw::Order | Kw::Group if order_by_probe(a, 0, false) => {
            let v = &a.toks[2];
            if v.kind == Kind::Num && (a.complete && a.len <= 4 || a.comment_after[2]) {
                return Some("sqli-order-by");
            }
        }
        Kw::Limit
            if a.toks
                .get(1)
                .is_some_and(|n| n.kind == Kind::Num && a.len > 1) =>
        {
            let last = a.len - 1;
            if a.complete && a.comment_after[last] && valid_seq(a, 1, a.len) {
                return Some("sqli-clause");
            }
        }
        Kw::Where | Kw::Having => {
            let o = operand(a, view, 1);
            if o.valid && o.cmp && valid_seq(a, 1, o.end) {
                return Some("sqli-tautology");
            }
        }
        _ => {}
    }
    // A word the payload starts with, then a boolean test: `hi' or 1=1 --`, `HOPE AND -8=-3`.
    if a.len >= 3 && a.toks[0].is_value() && a.toks[1].kind == Kind::Logic {
        let o = operand(a, view, 2);
        if o.valid && (o.func || o.select || o.cmp && constant_comparison(a, 2, o.end)) {
            return Some("sqli-tautology");
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
                return Some("sqli-case-expression");
            }
        }
    }
    // A parenthesized expression or a function call that is SQL throughout:
    // `(select login/2 from users limit 1,1)`, `LENGTH(version())`, `( BINARY COS ( 'b')) --`.
    if matches!(t0.kind, Kind::LParen | Kind::Func) {
        let end = (0..a.len)
            .find(|&k| a.comment_after[k])
            .map_or(a.len, |k| k + 1);
        let closed = end < a.len || a.complete || a.comment_after[end - 1];
        let known_start =
            t0.kind == Kind::LParen || matches!(t0.kw, Kw::SqlFunc | Kw::TimeFunc | Kw::Danger);
        if closed && known_start && valid_seq(a, 0, end) && has_sql_weight(a, 0, end) {
            let nested = a.toks[1..end]
                .iter()
                .any(|t| sql_specific(view, t) || t.kw == Kw::Select);
            if nested || t0.kw == Kw::TimeFunc {
                return Some("sqli-statement");
            }
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
            return Some("sqli-statement");
        }
    }
    let t = &a.toks[0];
    if matches!(t.kw, Kw::Select | Kw::Stmt | Kw::Waitfor) && statement_shape(a, view, 0, true) {
        return Some("sqli-statement");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(s: &str) -> Option<Rule> {
        super::super::normalize::on_lowercase(s, detect)
    }

    #[test]
    fn keyword_table_is_sorted_and_unique() {
        assert!(KEYWORDS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn attacks() {
        for s in [
            "1 UNION SELECT username, password FROM users",
            "' union all select 1,2,3--",
            "-1/**/union/**/select/**/1,user()",
            "1 /*!50000union*/ /*!select*/ 1",
            "' OR '1'='1",
            "' or 1=1--",
            "\" or \"\"=\"",
            "admin'--",
            "admin' #",
            "1 AND 1=1",
            "1) or (1=1",
            "' or sleep(5)#",
            "1 and sleep(5)",
            "'; WAITFOR DELAY '0:0:5'--",
            "1; waitfor delay '0:0:5'",
            "1||pg_sleep(5)--",
            "benchmark(1000000,md5(1))",
            "' and 1=(select count(*) from information_schema.tables)--",
            "select table_name from information_schema.tables",
            "'; drop table users--",
            "1; exec master..xp_cmdshell 'dir'",
            "' ORDER BY 3--",
            "-374 order by 9--",
            "' having 1=1--",
            "'=0--+",
            "x' AND email IS NULL; --",
            "' or 'x'='x",
            "1' or true--",
            "select @@version",
            "7 or 1 group by concat(user(),floor(rand(0)*2)) having min(0)--",
            "(case when 1=1 then 1 else 0 end)",
            "86union select 1",
            "(select top 1 name from sysobjects)--",
            "A\u{27} && \u{27}B",
        ] {
            assert!(hit(s).is_some(), "missed {s:?}");
        }
    }

    #[test]
    fn prose() {
        for s in [
            "Hi; how are you?",
            "a | b",
            "I love C#",
            "see you --",
            "0xdeadbeef",
            "online=true",
            "I need sleep (8h)",
            "SELECT your favourite",
            "I'll be there; don't wait",
            "cats & dogs",
            "5 > 3 and 2 < 4",
            "it's 5 o'clock somewhere",
            "rock 'n' roll or jazz",
            "1 by 1 inch pillows",
            "where is george",
            "O'connors UNION selected a few friends",
            "select 'and'",
            "'1--'",
            "FOO BAR'# BLAH",
            "time.sleep(5)",
            "await asyncio.sleep(1)",
            "",
            "'",
            "\"",
            "''''''",
        ] {
            assert_eq!(hit(s), None, "flagged {s:?}");
        }
    }
}
