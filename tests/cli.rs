//! The command line as an operator meets it: help, version, and start-up errors that name the bad
//! input. (Also makes `cargo test --workspace` build the binary the conformance tests start.)

use std::process::Command;

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sentinel-ws-agent"))
}

#[test]
fn help_lists_every_option_with_its_environment_variable() {
    let output = agent().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for (flag, env) in [
        ("--socket", "AGENT_SOCKET"),
        ("--grpc-address", "AGENT_GRPC_ADDRESS"),
        ("--xss-detection", "WS_XSS"),
        ("--sqli-detection", "WS_SQLI"),
        ("--command-injection", "WS_CMD"),
        ("--custom-patterns", "WS_PATTERNS"),
        ("--json-schema", "WS_JSON_SCHEMA"),
        ("--msgpack-validation", "WS_MSGPACK"),
        ("--max-messages-per-sec", "WS_RATE_MESSAGES"),
        ("--max-bytes-per-sec", "WS_RATE_BYTES"),
        ("--rate-limit-burst", "WS_RATE_BURST"),
        ("--max-text-frame-size", "WS_MAX_TEXT"),
        ("--max-binary-frame-size", "WS_MAX_BINARY"),
        ("--max-message-size", "WS_MAX_MESSAGE"),
        ("--block-mode", "WS_BLOCK_MODE"),
        ("--fail-open", "WS_FAIL_OPEN"),
        ("--log-frames", "WS_LOG_FRAMES"),
        ("--inspect-binary", "WS_INSPECT_BINARY"),
        ("--workers", "WS_WORKERS"),
        ("--idle-timeout", "WS_IDLE_TIMEOUT"),
        ("--max-connections", "WS_MAX_CONNECTIONS"),
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
        assert!(help.contains(env), "--help lacks {env}");
    }
    assert!(help.contains("/tmp/sentinel-ws.sock"));
}

#[test]
fn version_names_the_binary() {
    let output = agent().arg("--version").output().unwrap();
    let version = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        version.trim(),
        format!("sentinel-ws-agent {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn invalid_custom_pattern_is_a_startup_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = agent()
        .arg("--socket")
        .arg(dir.path().join("a.sock"))
        .args([
            "--custom-patterns",
            "fine",
            "--custom-patterns",
            "(unclosed",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("custom-patterns"), "{stderr}");
    assert!(stderr.contains("(unclosed"), "{stderr}");
    assert!(
        !dir.path().join("a.sock").exists(),
        "no socket is left behind"
    );
}

#[test]
fn invalid_flag_values_are_refused_with_the_flag_named() {
    for args in [
        &["--block-mode", "maybe"][..],
        &["--max-messages-per-sec", "lots"][..],
        &["--idle-timeout", "0"][..],
    ] {
        let output = agent().args(args).output().unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(args[0]), "{args:?}: {stderr}");
    }
}
