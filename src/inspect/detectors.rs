//! Placeholder keyword detectors (replaced by the structural detectors of the detection-quality
//! work). Input is already ASCII-lowercased.

use std::borrow::Cow;

use super::Finding;
use crate::model::AuditTag;

fn push(findings: &mut Vec<Finding>, tag: AuditTag, rule_id: &'static str) {
    findings.push(Finding {
        tag,
        rule_id: Cow::Borrowed(rule_id),
    });
}

/// Script tags, event handlers, `javascript:` URIs, embedding elements.
pub fn xss(text: &str, findings: &mut Vec<Finding>) {
    if text.contains("<script") {
        push(findings, AuditTag::Xss, "xss-script-tag");
    } else if text.contains("javascript:") {
        push(findings, AuditTag::Xss, "xss-javascript-uri");
    } else if ["<iframe", "<object", "<embed"]
        .iter()
        .any(|t| text.contains(t))
    {
        push(findings, AuditTag::Xss, "xss-embed-tag");
    } else if text.contains('<')
        && [" onerror=", " onload=", " onclick=", " onmouseover="]
            .iter()
            .any(|t| text.contains(t))
    {
        push(findings, AuditTag::Xss, "xss-event-handler");
    }
}

/// UNION SELECT, tautologies, time-based functions, schema probing.
pub fn sqli(text: &str, findings: &mut Vec<Finding>) {
    if text.contains("union select") || text.contains("union all select") {
        push(findings, AuditTag::Sqli, "sqli-union-select");
    } else if text.contains("' or '1'='1")
        || text.contains("' or 1=1")
        || text.contains("\" or 1=1")
    {
        push(findings, AuditTag::Sqli, "sqli-tautology");
    } else if text.contains("sleep(") && text.contains('\'') || text.contains("waitfor delay") {
        push(findings, AuditTag::Sqli, "sqli-time-based");
    } else if text.contains("information_schema") {
        push(findings, AuditTag::Sqli, "sqli-schema-probe");
    }
}

/// Command chaining into shell commands, substitutions, reverse shells.
pub fn command_injection(text: &str, findings: &mut Vec<Finding>) {
    const COMMANDS: [&str; 8] = [
        "cat /etc/passwd",
        "whoami",
        "id",
        "uname -a",
        "rm -rf",
        "nc -e",
        "wget ",
        "curl ",
    ];
    for sep in ["; ", ";", "| ", "|", "&& ", "&&"] {
        for cmd in COMMANDS {
            let needle = format!("{sep}{cmd}");
            if text.contains(&needle) {
                push(findings, AuditTag::CmdInjection, "cmdi-chained-command");
                return;
            }
        }
    }
    if text.contains("$(") || (text.matches('`').count() >= 2) || text.contains("/dev/tcp/") {
        push(findings, AuditTag::CmdInjection, "cmdi-substitution");
    }
}
