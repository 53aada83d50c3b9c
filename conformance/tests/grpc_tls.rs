//! gRPC over TLS and mutual TLS, with certificates generated for the test, driven by Sentinel's
//! v1 gRPC client (`AgentClient::grpc_tls`).

use std::time::Duration;

use conformance::{b64, run_to_exit, Agent, AgentConfig};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use sentinel_agent_protocol::{
    AgentClient, EventType, GrpcTlsConfig, WebSocketDecision, WebSocketFrameEvent,
};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A CA, a server certificate for `localhost` and a client certificate, as PEM.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client_cert = CertificateParams::new(vec!["proxy.example".to_string()])
        .unwrap()
        .signed_by(&client_key, &issuer)
        .unwrap();
    Pki {
        ca: ca_cert.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    }
}

fn write(dir: &std::path::Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_string_lossy().into_owned()
}

fn tls_agent(pki: &Pki, mutual: bool) -> (Agent, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--grpc-address".to_string(),
        "127.0.0.1:0".to_string(),
        "--grpc-tls-cert".to_string(),
        write(dir.path(), "server.pem", &pki.server_cert),
        "--grpc-tls-key".to_string(),
        write(dir.path(), "server.key", &pki.server_key),
    ];
    if mutual {
        args.push("--grpc-tls-client-ca".to_string());
        args.push(write(dir.path(), "ca.pem", &pki.ca));
    }
    (AgentConfig::default().args(args).start(), dir)
}

fn https(agent: &Agent) -> String {
    agent
        .grpc_endpoint()
        .replace("http://127.0.0.1", "https://localhost")
}

fn xss() -> WebSocketFrameEvent {
    WebSocketFrameEvent {
        correlation_id: "tls".into(),
        opcode: "text".into(),
        data: b64(b"<script>alert(1)</script>"),
        client_to_server: true,
        frame_index: 0,
        fin: true,
        route_id: None,
        client_ip: "127.0.0.1".into(),
    }
}

#[tokio::test]
async fn tls_serves_clients_that_trust_the_ca() {
    let pki = pki();
    let (agent, _dir) = tls_agent(&pki, false);
    let config = GrpcTlsConfig::new()
        .with_ca_cert_pem(pki.ca.clone())
        .with_domain_name("localhost");
    let mut client = AgentClient::grpc_tls("ws", https(&agent), TIMEOUT, config)
        .await
        .expect("TLS connect");
    let response = client
        .send_event(EventType::WebSocketFrame, &xss())
        .await
        .unwrap();
    assert!(
        matches!(
            response.websocket_decision,
            Some(WebSocketDecision::Close { code: 1008, .. })
        ),
        "{response:?}"
    );
    assert!(agent.log().contains("tls=true"), "{}", agent.log());
}

#[tokio::test]
async fn mutual_tls_refuses_clients_without_a_certificate() {
    let pki = pki();
    let (agent, _dir) = tls_agent(&pki, true);
    let with_identity = GrpcTlsConfig::new()
        .with_ca_cert_pem(pki.ca.clone())
        .with_domain_name("localhost")
        .with_client_identity(pki.client_cert.clone(), pki.client_key.clone());
    let mut client = AgentClient::grpc_tls("ws", https(&agent), TIMEOUT, with_identity)
        .await
        .expect("mTLS connect");
    let response = client
        .send_event(EventType::WebSocketFrame, &xss())
        .await
        .unwrap();
    assert!(matches!(
        response.websocket_decision,
        Some(WebSocketDecision::Close { code: 1008, .. })
    ));

    let without_identity = GrpcTlsConfig::new()
        .with_ca_cert_pem(pki.ca.clone())
        .with_domain_name("localhost");
    let refused = match AgentClient::grpc_tls("ws", https(&agent), TIMEOUT, without_identity).await
    {
        Err(_) => true,
        Ok(mut client) => client
            .send_event(EventType::WebSocketFrame, &xss())
            .await
            .is_err(),
    };
    assert!(refused, "a client without a certificate was served");
}

#[test]
fn unusable_tls_files_are_start_up_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = write(dir.path(), "bogus.pem", "not a certificate");
    let key = write(dir.path(), "server.key", &pki().server_key);
    let (status, stderr) = run_to_exit(
        &[
            "--grpc-address",
            "127.0.0.1:0",
            "--grpc-tls-cert",
            &bogus,
            "--grpc-tls-key",
            &key,
        ],
        &[],
    );
    assert!(!status.success());
    assert!(
        stderr.contains("--grpc-tls-cert") && stderr.contains("bogus.pem"),
        "{stderr}"
    );
}

#[test]
fn plaintext_grpc_on_a_public_address_is_warned_about() {
    let agent = AgentConfig::default()
        .args(["--grpc-address", "0.0.0.0:0"])
        .start();
    agent.wait_for_log("without TLS on a non-loopback address", TIMEOUT);
}
