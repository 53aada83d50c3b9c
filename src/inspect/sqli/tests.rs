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

/// The examples of issue 18 and variants of them (other numbers, names, quotes, spacing,
/// comments, case).
#[test]
fn breakouts_after_leading_text_and_boundaries() {
    for s in [
        "a ' OR 1=1 --",
        "hello ' OR 1=1--",
        "some words \" or 7=7 #",
        "my name ' AnD 42=42/*",
        "bob ' OR 'q'='q",
        "1) where 51=51 and 7=9--",
        "9) WHERE 14=14 AND 3=8-- x",
        "1\") as q where 12=12 order by 1#",
        "4')) AS t9 WHERE 33=33 OR 2=2#",
        "1' in boolean mode) order by 2--",
        "7\" IN BOOLEAN MODE) AND 6=6#",
        "1 where 51=51 or char(65)||char(66)=regexp_substring(repeat(left(char(66),0),500000000),null)--",
        "name` WHERE 8=8 AND 1=1-- qq",
        "x`=`x` and 5=5 and `x`=`x",
        "12$$ OR 4=4-- z",
        "3*/ or 6=6/*",
        "word',IIF(3=3,1,1/0)-- k",
        "5,(CASE WHEN 8=8 THEN 5 ELSE NULL END)",
        "x y,;SELECT COUNT(*) FROM t1 AS a,t1 AS b",
        "mail@example.net';",
    ] {
        assert!(hit(s).is_some(), "missed {s:?}");
    }
}

/// Payload families of injection tools, with tamper-style variation.
#[test]
fn payload_families() {
    for s in [
        "77 AND EXTRACTVALUE(12,CONCAT(0x5c,(SELECT version())))",
        "x' AND UPDATEXML(1,concat(0x2e,user()),1)-- ",
        "9 AND EXP(~(SELECT * FROM (SELECT user())a))",
        "1 AND GTID_SUBSET(CONCAT(0x71,(SELECT 5)),4)",
        "1 OR JSON_KEYS((SELECT CONVERT((SELECT 1) USING utf8)))",
        "4 AND 3=CONVERT(INT,(SELECT @@version))",
        "q' AND 8=CAST((SELECT 'a') AS NUMERIC)-- ",
        "2 AND 7=DBMS_UTILITY.SQLID_TO_SQLHASH((SELECT 'x' FROM DUAL))",
        "3;SELECT PG_SLEEP(4)--",
        "6 AND SLEEP(3)",
        "z' AND BENCHMARK(3000000,MD5(1))#",
        "1;WAITFOR DELAY '0:0:4'--",
        "8 AND 5=DBMS_PIPE.RECEIVE_MESSAGE(CHR(65),4)",
        "1;BEGIN DBMS_LOCK.SLEEP(3); END--",
        "w');CALL REGEXP_SUBSTRING(REPEAT(RIGHT(CHAR(70),0),300000000),NULL)-- k",
        "2 AND 9=(SELECT COUNT(*) FROM ALL_USERS A1,ALL_USERS A2,ALL_USERS A3)",
        "4 AND 6=LIKE(CHAR(65,66),UPPER(HEX(RANDOMBLOB(300000000/2))))",
        "-5 UNION ALL SELECT NULL,NULL,CONCAT(0x71,0x72)-- -",
        "zz' ORDER BY 6#",
        "3 AND MAKE_SET(4=4,2)",
        "MAKE_SET(61=61,3)",
        "7 OR ELT(3=3,9)",
        "IIF(6=6,1,1/0)",
        "(35=35)*12",
        "8 AND CASE WHEN 2=2 THEN 1 ELSE 0 END",
        "1 RLIKE (SELECT (CASE WHEN (5=5) THEN 1 ELSE 0x28 END))",
        "1/**/AND/**/4=4",
        "1 AnD 4 BeTwEeN 4 AnD 4",
        "IIF(6 BETWEEN 6 AND 6,1,1/0)",
        "x' and 'p' LIKE 'p",
        "1 /*!50000AND*/ 9=9",
        "(SELECT COUNT(*) FROM SYSMASTER:SYSPAGHDR)",
        "BEGIN IF (3=3) THEN DBMS_SESSION.SLEEP(4); END IF; END;",
    ] {
        assert!(hit(s).is_some(), "missed {s:?}");
    }
}

/// Languages beside SQL proper: NoSQL operators, PostgreSQL casts and JSON operators, more
/// statements.
#[test]
fn nosql_postgres_and_statements() {
    for s in [
        "login[$ne]=nobody",
        "name[$regex]=^a",
        "{\"pass\": {\"$gt\": \"\"}}",
        "{\"$where\": \"sleep(100)\"}",
        "{user: {$in: [1, 2]}}",
        "code::int",
        "f(x)::text",
        "'{\"k\":3}'::jsonb @> '{\"k\":3}'",
        "OR '{\"k\":1}' ? 'k'",
        "x; insert into logs (msg) values ('x')--",
        ";REPLACE t (a, b) VALUES (2, 3)",
        "SELECT a GROUP BY b HAVING COUNT(c) > 3",
        "EXECUTE IMMEDIATE 'drop table x'",
        "select(database())",
        "1 or /*+ INDEX(t) */ true",
        "from `information_schema`.tables",
    ] {
        assert!(hit(s).is_some(), "missed {s:?}");
    }
}

/// Prose and code with SQL words, quotes and operators.
#[test]
fn prose_and_code_stay_clean() {
    for s in [
        "he said 'or' twice",
        "SMALL \"&\" SIGN",
        "it's 'on' or 'off' really",
        "I'd rather say 'no' or nothing at all",
        "use std::int;",
        "let s = String::from(\"x\");",
        "where 5 people meet",
        "2) Grant of licence to use the software",
        "Select all the files you want to copy.",
        "{\"$schema\": \"http://json-schema.org/draft-07/schema#\", \"$id\": \"x\"}",
        "{\"$type\": \"Foo, Bar\", \"$values\": [1]}",
        "price is $5 or less",
        "the time (in seconds) = 5",
        "select a country from the list",
        "if (x == 1) or (y == 2):",
        "my_var = 'a'  # comment",
        "Smith & Sons, Flat 3; 12 Main St",
        "in case they ask, then say no",
        "values (1, 2) are fine",
        "the `as` keyword from Python",
        "grep 'x' file | wc -l",
    ] {
        assert_eq!(hit(s), None, "flagged {s:?}");
    }
}

/// Every rule id the detector reports for the examples above is in the catalog.
#[test]
fn reported_rules_are_in_the_catalog() {
    for s in [
        "hello ' OR 1=1--",
        "1) where 51=51 and 7=9--",
        "4 AS x FROM t",
        "MAKE_SET(61=61,3)",
        "5,(CASE WHEN 8=8 THEN 5 ELSE NULL END)",
        "mail@example.net';",
        "login[$ne]=nobody",
        "code::int",
        "'{\"k\":3}'::jsonb ? 'k'",
        "' or 1=1--",
        "1 union select 1",
        "admin'--",
        "1;WAITFOR DELAY '0:0:4'--",
    ] {
        let rule = hit(s).unwrap_or_else(|| panic!("missed {s:?}"));
        assert!(RULES.iter().any(|r| r.id == rule), "{rule} not in RULES");
    }
    assert_eq!(
        json_key(b"$ne", RuleFilter::ALL),
        Some("sqli-nosql-operator")
    );
    assert_eq!(json_key(b"$schema", RuleFilter::ALL), None);
}

/// A rule switched off lets the scan go on to the others.
#[test]
fn a_switched_off_rule_does_not_hide_the_others() {
    let s = "1 union select sleep(5)";
    assert_eq!(hit(s), Some("sqli-union"));
    let r = super::super::normalize::on_lowercase(s, |v, m, _| {
        detect(v, m, RuleFilter::without(&["sqli-union"]))
    });
    assert_eq!(r, Some("sqli-time-based"));
}

/// Hostile input: random bytes and long runs finish without panicking.
#[test]
fn hostile_input_is_harmless() {
    let mut x: u32 = 0x9e37_79b9;
    let mut buf = Vec::with_capacity(4096);
    for round in 0..2000 {
        buf.clear();
        for _ in 0..(round % 300) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let alphabet = b"'\"`$*/()-#;=<>@?:|&,. aorsel1{}[]\\";
            buf.push(alphabet[x as usize % alphabet.len()]);
        }
        let _ = super::super::normalize::on_lowercase(&String::from_utf8_lossy(&buf), detect);
    }
    for unit in [
        "$$",
        "*/",
        "`",
        "::",
        "#>",
        "?|",
        "[$ne]",
        "case when ",
        "between 1 and ",
    ] {
        let _ = hit(&unit.repeat(5000));
    }
}
