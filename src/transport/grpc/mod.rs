//! The gRPC transport (`--grpc-address`): one tonic server with `sentinel.agent.v1.AgentProcessor`
//! and `AgentServiceV2` under both `sentinel.agent.v2` and `zentinel.agent.v2`, generated from our
//! own files in `proto/`, optionally over TLS or mutual TLS. It stops accepting connections when
//! draining starts.

pub mod proto;
mod unary_deadline;
pub mod v1;
pub mod v2;

use std::path::{Path, PathBuf};

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use super::TransportContext;

/// TLS material for the gRPC server, read at start-up.
#[derive(Debug, Clone)]
pub struct GrpcTls {
    config: ServerTlsConfig,
    /// Whether clients must present a certificate signed by the client CA.
    pub mutual: bool,
}

/// A TLS file that cannot be used; names the option and the file.
#[derive(Debug, thiserror::Error)]
#[error("{option} {}: {message}", path.display())]
pub struct TlsError {
    option: &'static str,
    path: PathBuf,
    message: String,
}

fn read_pem(option: &'static str, path: &Path, label: &str) -> Result<Vec<u8>, TlsError> {
    let error = |message: String| TlsError {
        option,
        path: path.to_owned(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| error(format!("cannot read: {e}")))?;
    if !bytes.windows(label.len()).any(|w| w == label.as_bytes()) {
        return Err(error(format!("not a PEM file with a {label} block")));
    }
    Ok(bytes)
}

impl GrpcTls {
    /// Reads the certificate chain, the key and the optional client CA.
    pub fn load(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<GrpcTls, TlsError> {
        // One crypto provider for the process, whatever features other crates switched on.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cert = read_pem("--grpc-tls-cert", cert, "CERTIFICATE")?;
        let key = read_pem("--grpc-tls-key", key, "PRIVATE KEY")?;
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        let mutual = client_ca.is_some();
        if let Some(path) = client_ca {
            let ca = read_pem("--grpc-tls-client-ca", path, "CERTIFICATE")?;
            config = config.client_ca_root(Certificate::from_pem(ca));
        }
        Ok(GrpcTls { config, mutual })
    }
}

/// Builds the gRPC server (TLS is set up here, so its errors surface at start-up) and returns the
/// future that serves `listener` until draining starts (open streams keep being served by tonic's
/// graceful shutdown until they end or the process exits).
pub fn server(
    listener: TcpListener,
    context: TransportContext,
    tls: Option<GrpcTls>,
) -> Result<
    impl std::future::Future<Output = Result<(), tonic::transport::Error>>,
    tonic::transport::Error,
> {
    let lifecycle = std::sync::Arc::clone(&context.lifecycle);
    // Advertised as SETTINGS_MAX_CONCURRENT_STREAMS: one connection cannot open more streams
    // than the process-wide --max-grpc-streams (which the services count across connections).
    let max_streams = u32::try_from(context.max_grpc_streams).unwrap_or(u32::MAX);
    let mut builder = tonic::transport::Server::builder().max_concurrent_streams(max_streams);
    if let Some(tls) = tls {
        builder = builder.tls_config(tls.config)?;
    }
    let v1 = v1::V1Service::new(context.clone());
    let router = builder
        .layer(unary_deadline::UnaryDeadlineLayer {
            limit: context.read_timeout,
        })
        .add_service(proto::sentinel_v1::agent_processor_server::AgentProcessorServer::new(v1))
        .add_service(v2::Service::new(context.clone()).sentinel_server())
        .add_service(v2::Service::new(context).zentinel_server());
    Ok(
        router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            lifecycle.accepting_stopped().await;
        }),
    )
}
