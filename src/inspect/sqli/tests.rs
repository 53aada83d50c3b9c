//! Unit tests of the SQL injection detector: must detect, must not flag (prose and pasted code
//! with SQL words and quotes), and every rule id it reports is in the catalog.

use super::vocab::KEYWORDS;
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

#[test]
#[ignore]
fn probe_file() {
    let Ok(s) = std::fs::read_to_string("/tmp/sqli-probe.txt") else {
        return;
    };
    for line in s.lines() {
        println!("{:?} <= {line}", hit(line));
        if std::env::var("SQLI_TOKENS").is_ok() {
            let low = line.to_ascii_lowercase();
            let ctx = if low.contains('\'') {
                Context::Quoted(b'\'')
            } else {
                Context::Bare
            };
            let mut lx = Lexer::new(low.as_bytes(), ctx);
            while let Some(t) = lx.next_tok() {
                print!(
                    "[{:?}/{:?} {}] ",
                    t.kind,
                    t.kw,
                    String::from_utf8_lossy(&low.as_bytes()[t.start..t.end])
                );
            }
            println!();
        }
    }
}
