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
