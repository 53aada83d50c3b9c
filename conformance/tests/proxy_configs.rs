//! The proxy configuration examples in `examples/` are read by the proxies' own configuration
//! crates (`sentinel-config` 0.4.14 and `zentinel-config` 0.6.45), validated the way a proxy
//! validates at start-up, and checked for what actually makes WebSocket frames reach the agent.
//! Upstream documentation disagrees with these parsers in several places; the parsers win.
//!
//! No agent binary is needed: the pushed `config` blocks are applied to the agent's policy
//! in-process, exactly as a configure event would apply them.

use std::path::{Path, PathBuf};

use sentinel_ws_agent::options::{PolicyOptions, DEFAULT_SOCKET};
use sentinel_ws_agent::policy::{ConfigureOutcome, Policy, SharedPolicy};
use serde_json::{json, Value};

/// Sentinel 0.4.x wraps every frame inspection in its own hard 100 ms timeout and fails open
/// when it fires (sentinel-proxy http_trait.rs / inspector.rs), so the agent timeout must stay
/// below it for `failure_mode` to mean anything.
const SENTINEL_HARD_FRAME_TIMEOUT_MS: u64 = 100;

fn example_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(relative)
}

fn read_example(relative: &str) -> String {
    let path = example_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The `config` block both examples push to the agent.
fn expected_pushed_config() -> Value {
    json!({
        "block-mode": true,
        "max-text-frame-size": 65536,
        "fail-open": true,
    })
}

/// Applies `config` the way the agent applies a configure event and returns the running options.
fn apply_pushed_config(config: &Value) -> PolicyOptions {
    let baseline = Policy::compile(PolicyOptions::default()).expect("default policy compiles");
    let shared = SharedPolicy::new(baseline);
    let outcome = shared
        .configure(config)
        .unwrap_or_else(|e| panic!("the agent rejects the pushed config {config}: {e}"));
    assert_eq!(outcome, ConfigureOutcome::Applied);
    shared.load().options.clone()
}

/// serde ignores keys it does not know, so a misspelt key in a JSON config is dropped without a
/// word and the proxy runs on the default. Every key of the file must therefore survive a
/// parse-and-serialize round trip.
fn assert_no_dropped_keys(source: &Value, reparsed: &Value, path: &str) {
    match (source, reparsed) {
        (Value::Object(src), Value::Object(back)) => {
            for (key, value) in src {
                let here = format!("{path}.{key}");
                let Some(back_value) = back.get(key) else {
                    panic!("`{here}` is not read by sentinel-config 0.4.14 (silently dropped)");
                };
                assert_no_dropped_keys(value, back_value, &here);
            }
        }
        (Value::Array(src), Value::Array(back)) => {
            assert_eq!(src.len(), back.len(), "`{path}` changed length");
            for (i, (a, b)) in src.iter().zip(back).enumerate() {
                assert_no_dropped_keys(a, b, &format!("{path}[{i}]"));
            }
        }
        (Value::Object(_) | Value::Array(_), other) => {
            panic!("`{path}` was read as {other}, not as the structure written")
        }
        _ => {}
    }
}

/// The policy each inspected route of an example gets from `examples/policies/routes.toml`, by
/// the route id the proxy sends with its frames (the route's id in the configuration).
fn route_policies(route_ids: &[&str]) -> Vec<String> {
    use sentinel_ws_agent::routes::{PolicyDocument, PolicySet};
    let path = example_path("policies/routes.toml");
    let document = PolicyDocument::read(&path, 1024 * 1024)
        .unwrap_or_else(|e| panic!("examples/policies/routes.toml: {e}"));
    let set = PolicySet::compile(
        PolicyOptions::default(),
        Some(std::sync::Arc::new(document)),
        &sentinel_ws_agent::compiler::CompileLimits::default().for_startup(),
    )
    .unwrap_or_else(|e| panic!("examples/policies/routes.toml does not compile: {e}"));
    route_ids
        .iter()
        .map(|id| set.resolve(Some(id)).name.to_string())
        .collect()
}

mod sentinel {
    use super::*;
    use sentinel_config::{
        AgentEvent, AgentProtocolVersion, AgentTransport, Config, FailureMode, MatchCondition,
    };

    const FILE: &str = "sentinel/sentinel.json";

    fn load() -> (Value, Config) {
        let text = read_example(FILE);
        let raw: Value = serde_json::from_str(&text).expect("sentinel.json is JSON");
        let config = Config::from_json(&text)
            .unwrap_or_else(|e| panic!("sentinel-config rejects {FILE}: {e:#}"));
        (raw, config)
    }

    #[test]
    fn one_agent_serves_two_routes_with_a_policy_each() {
        let (_, config) = load();
        let inspected: Vec<&str> = config
            .routes
            .iter()
            .filter(|r| r.websocket && r.websocket_inspection)
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(inspected, ["ws", "trading"]);
        // Sentinel sends every frame to every agent that handles frames: the one agent sees both.
        assert_eq!(config.agents.len(), 1);
        assert_eq!(route_policies(&inspected), ["chat", "trading"]);
    }

    #[test]
    fn parses_and_passes_start_up_validation() {
        let (_, config) = load();
        assert!(config.check_schema_version().is_loadable());
        // What the proxy runs before it starts: schema, cross references, upstream targets,
        // agent timeouts and the socket's parent directory (/tmp).
        config
            .validate()
            .unwrap_or_else(|e| panic!("sentinel-config validation fails for {FILE}: {e}"));
    }

    #[test]
    fn every_key_is_read_by_the_parser() {
        let (raw, config) = load();
        let reparsed = serde_json::to_value(&config).expect("Config serializes");
        assert_no_dropped_keys(&raw, &reparsed, "$");
    }

    #[test]
    fn ws_inspector_is_a_v1_unix_socket_agent_subscribed_to_frames() {
        let (_, config) = load();
        let agent = config
            .get_agent("ws-inspector")
            .expect("agent ws-inspector");
        match &agent.transport {
            AgentTransport::UnixSocket { path } => assert_eq!(path, Path::new(DEFAULT_SOCKET)),
            other => panic!("expected a unix socket transport, got {other:?}"),
        }
        // Sentinel 0.4.x sends frames only to v1 agents: on a v2 agent every frame is a failed
        // call ("V2 does not support event type WebSocketFrame").
        assert_eq!(agent.protocol_version, AgentProtocolVersion::V1);
        assert!(agent.events.contains(&AgentEvent::WebSocketFrame));
        assert_eq!(
            serde_json::to_value(AgentEvent::WebSocketFrame).unwrap(),
            json!("web_socket_frame"),
            "the JSON spelling of the frame event"
        );
        assert_eq!(agent.failure_mode, FailureMode::Open);
        assert!(agent.timeout_ms > 0 && agent.timeout_ms < SENTINEL_HARD_FRAME_TIMEOUT_MS);
        assert_eq!(agent.config.as_ref(), Some(&expected_pushed_config()));
    }

    #[test]
    fn ws_route_upgrades_inspects_and_reaches_the_agent() {
        let (_, config) = load();
        let route = config.get_route("ws").expect("route ws");
        assert!(route.websocket, "route ws must allow the upgrade");
        assert!(route.websocket_inspection, "route ws must inspect frames");
        assert!(
            matches!(route.matches.as_slice(), [MatchCondition::PathPrefix(p)] if p == "/ws"),
            "route ws must match /ws, got {:?}",
            route.matches
        );
        let upstream_id = route.upstream.as_deref().expect("route ws has an upstream");
        let upstream = config.get_upstream(upstream_id).expect("upstream exists");
        assert_eq!(upstream.targets[0].address, "127.0.0.1:9000");
        // Sentinel 0.4.x does not route frames through filters: on an inspected route every
        // frame goes to every loaded agent whose events include WebSocketFrame
        // (AgentManager::process_websocket_frame), and only v1 ones answer.
        let frame_agents: Vec<&str> = config
            .agents
            .iter()
            .filter(|a| a.events.contains(&AgentEvent::WebSocketFrame))
            .filter(|a| a.protocol_version == AgentProtocolVersion::V1)
            .map(|a| a.id.as_str())
            .collect();
        assert_eq!(frame_agents, ["ws-inspector"]);
        assert_eq!(config.listeners.len(), 1);
    }

    /// Why the Sentinel example is JSON: the 0.4.14 KDL parser knows no WebSocket frame event
    /// under any spelling, so a KDL config cannot subscribe an agent to frames.
    #[test]
    fn kdl_cannot_subscribe_to_websocket_frames() {
        for spelling in [
            "websocket_frame",
            "websocket-frame",
            "web_socket_frame",
            "web-socket-frame",
        ] {
            let kdl = format!(
                "agents {{\n  agent \"ws-inspector\" {{\n    unix-socket \"{DEFAULT_SOCKET}\"\n    \
                 events \"{spelling}\"\n  }}\n}}\n"
            );
            let error = Config::from_kdl(&kdl).expect_err(spelling).to_string();
            assert!(
                error.contains("Unknown agent event"),
                "{spelling}: unexpected error {error}"
            );
        }
    }

    #[test]
    fn pushed_config_is_accepted_by_the_agent() {
        let (_, config) = load();
        let pushed = config.get_agent("ws-inspector").unwrap().config.clone();
        let options = apply_pushed_config(&pushed.expect("agent has a config block"));
        assert!(options.block_mode);
        assert!(options.fail_open);
        assert_eq!(options.max_text_frame_size, 65536);
    }
}

mod zentinel {
    use super::*;
    use zentinel_config::validate::{lint::lint_config, unknown_keys, ValidationResult};
    use zentinel_config::{
        AgentEvent, AgentTransport, Config, FailureMode, Filter, MatchCondition,
    };

    const FILE: &str = "zentinel/zentinel.kdl";

    fn load() -> (String, Config) {
        let text = read_example(FILE);
        let config = Config::from_kdl(&text)
            .unwrap_or_else(|e| panic!("zentinel-config rejects {FILE}: {e:#}"));
        (text, config)
    }

    #[test]
    fn one_agent_serves_two_routes_with_a_policy_each() {
        let (_, config) = load();
        let mut inspected: Vec<&str> = config
            .routes
            .iter()
            .filter(|r| r.websocket && r.websocket_inspection)
            .map(|r| r.id.as_str())
            .collect();
        inspected.sort_unstable();
        assert_eq!(inspected, ["trading", "ws"]);
        for id in &inspected {
            let route = config.get_route(id).unwrap();
            assert_eq!(
                route.filters,
                ["ws"],
                "route {id} reaches the agent through filter ws"
            );
        }
        assert_eq!(route_policies(&inspected), ["trading", "chat"]);
    }

    #[test]
    fn parses_and_passes_start_up_validation() {
        let (_, config) = load();
        assert!(config.check_schema_version().is_loadable());
        config
            .validate()
            .unwrap_or_else(|e| panic!("zentinel-config validation fails for {FILE}: {e}"));
    }

    /// KDL blocks accept any key and the parser drops what it does not read; the crate's own
    /// unknown-key check must find nothing. (It does not cover agent filters, so the filter's
    /// settings are asserted one by one below.)
    #[test]
    fn every_key_is_read_by_the_parser() {
        let (text, config) = load();
        let mut result = ValidationResult::new();
        unknown_keys::check_unknown_keys(&text, &mut result);
        let warnings: Vec<String> = result.warnings.iter().map(|w| w.to_string()).collect();
        assert!(warnings.is_empty(), "unknown keys in {FILE}: {warnings:#?}");

        // Best-practice lint: nothing about the agent or its filter.
        let lint = lint_config(&config);
        assert!(lint.errors.is_empty(), "{:?}", lint.errors);
        for warning in &lint.warnings {
            let message = warning.to_string();
            assert!(
                !message.contains("ws-inspector") && !message.contains("filter 'ws'"),
                "lint warning about the WebSocket agent path: {message}"
            );
        }
    }

    #[test]
    fn ws_inspector_is_a_unix_socket_agent_subscribed_to_frames() {
        let (_, config) = load();
        let agent = config
            .get_agent("ws-inspector")
            .expect("agent ws-inspector");
        match &agent.transport {
            AgentTransport::UnixSocket { path } => assert_eq!(path, Path::new(DEFAULT_SOCKET)),
            other => {
                panic!("expected a unix socket transport (gRPC gets no frames), got {other:?}")
            }
        }
        assert!(agent.events.contains(&AgentEvent::WebSocketFrame));
        assert_eq!(agent.timeout_ms, 50);
        assert_eq!(agent.config.as_ref(), Some(&expected_pushed_config()));
    }

    #[test]
    fn ws_route_upgrades_inspects_and_reaches_the_agent_through_its_filter() {
        let (_, config) = load();
        let route = config.get_route("ws").expect("route ws");
        assert!(route.websocket, "route ws must allow the upgrade");
        assert!(route.websocket_inspection, "route ws must inspect frames");
        assert!(
            matches!(route.matches.as_slice(), [MatchCondition::PathPrefix(p)] if p == "/ws"),
            "route ws must match /ws, got {:?}",
            route.matches
        );
        let upstream_id = route.upstream.as_deref().expect("route ws has an upstream");
        let upstream = config.get_upstream(upstream_id).expect("upstream exists");
        assert_eq!(upstream.targets[0].address, "127.0.0.1:9000");
        assert_eq!(upstream.timeouts.read_secs, 3600);

        // Zentinel sends a route's frames to the agents of its agent filters, and takes the
        // timeout and failure mode from the filter.
        assert_eq!(route.filters, ["ws"]);
        let filter = &config.filters.get("ws").expect("filter ws").filter;
        let Filter::Agent(agent_filter) = filter else {
            panic!("filter ws must be an agent filter, got {filter:?}");
        };
        assert_eq!(agent_filter.agent, "ws-inspector");
        assert_eq!(agent_filter.timeout_ms, Some(50));
        assert_eq!(agent_filter.failure_mode, Some(FailureMode::Open));
        let agent = config
            .get_agent(&agent_filter.agent)
            .expect("filter's agent");
        assert!(agent.events.contains(&AgentEvent::WebSocketFrame));
    }

    #[test]
    fn pushed_config_is_accepted_by_the_agent() {
        let (_, config) = load();
        let pushed = config.get_agent("ws-inspector").unwrap().config.clone();
        let options = apply_pushed_config(&pushed.expect("agent has a config block"));
        assert!(options.block_mode);
        assert!(options.fail_open);
        assert_eq!(options.max_text_frame_size, 65536);
    }
}
