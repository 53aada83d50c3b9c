//! Wires the pieces together for the binary: compile the policy, start the actor system and the
//! listeners, then run until a signal and drain.

use std::sync::Arc;
use std::time::Duration;

use crate::agent::{Agent, AgentSettings, StartError};
use crate::compiler::CompileLimits;
use crate::health;
use crate::lifecycle::{termination_signal, DrainOutcome, Lifecycle};
use crate::options::Options;
use crate::policy::{Policy, PolicyError};
use crate::shared_limits::{IpLimiter, SharedLimitSettings};
use crate::telemetry;
use crate::transport::uds::{self, BindError};
use crate::transport::{grpc, TransportContext};

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The start-up policy is invalid.
    #[error("invalid configuration: {0}")]
    Policy(#[from] PolicyError),
    /// The Unix socket cannot be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The actor system did not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The metrics endpoint cannot be bound.
    #[error("cannot serve metrics on {address}: {source}")]
    Metrics {
        /// The address given.
        address: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A gRPC TLS file is unusable.
    #[error(transparent)]
    Tls(#[from] grpc::TlsError),
    /// The per-client-IP limits cannot start (a bad --redis-url).
    #[error(transparent)]
    SharedLimits(#[from] crate::shared_limits::BadRedisUrl),
    /// The gRPC address cannot be bound.
    #[error("cannot serve gRPC on {address}: {source}")]
    Grpc {
        /// The address given.
        address: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Runs the agent until SIGTERM/SIGINT and the drain that follows.
pub async fn run(options: Options) -> Result<(), RunError> {
    let compile_limits = CompileLimits::from_options(&options);
    // The start-up configuration obeys the same bounds as a pushed one (with detailed errors:
    // the operator wrote it).
    let policy = Policy::compile_with(options.policy.clone(), &compile_limits.for_startup())?;
    if let Some(marker) = &options.debug_panic_marker {
        tracing::warn!(
            "--debug-panic-marker is set: detectors will panic on purpose (testing only)"
        );
        crate::actors::detector::fault_injection::arm(marker);
    }
    let tls = match (&options.grpc_tls_cert, &options.grpc_tls_key) {
        (Some(cert), Some(key)) => Some(grpc::GrpcTls::load(
            cert,
            key,
            options.grpc_tls_client_ca.as_deref(),
        )?),
        _ => None,
    };
    let lifecycle = Lifecycle::new();
    let prometheus = telemetry::install_recorder();
    telemetry::Telemetry::get();

    // Everything that can fail is bound before the actor system starts: a start that fails (a
    // port taken) exits without detectors to stop (they were restarted in a storm otherwise).
    let metrics_listener =
        match &options.metrics_address {
            Some(address) => Some(tokio::net::TcpListener::bind(address).await.map_err(
                |source| RunError::Metrics {
                    address: address.clone(),
                    source,
                },
            )?),
            None => None,
        };
    let grpc_listener =
        match &options.grpc_address {
            Some(address) => Some(tokio::net::TcpListener::bind(address).await.map_err(
                |source| RunError::Grpc {
                    address: address.clone(),
                    source,
                },
            )?),
            None => None,
        };
    let ip_limiter = IpLimiter::start(&SharedLimitSettings {
        redis_url: options.redis_url.clone(),
        peers_hint: options.redis_peers_hint,
        max_tracked_ips: usize::try_from(options.max_tracked_ips).unwrap_or(usize::MAX),
    })?;
    let socket = uds::bind(&options.socket, options.socket_mode).await?;
    let workers = options.worker_count();
    let (agent, router_handle) = Agent::start_with(
        policy,
        AgentSettings {
            workers,
            max_buffered_bytes: options.max_buffered_bytes,
            hibernate_after: Duration::from_secs(options.hibernate_after),
            compile_limits,
            ip_limiter: Some(ip_limiter),
        },
    )
    .await?;
    if let (Some(listener), Some(handle)) = (metrics_listener, prometheus) {
        tracing::info!(
            address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            "serving /metrics, /healthz, /readyz, /connections"
        );
        tokio::spawn(telemetry::http::serve(
            listener,
            handle,
            Arc::clone(&lifecycle),
            agent.clone(),
        ));
    }
    let context = TransportContext {
        health: health::spawn_monitor(agent.clone(), Arc::clone(&lifecycle)),
        agent: agent.clone(),
        lifecycle: Arc::clone(&lifecycle),
        agent_id: Arc::from(options.agent_id.as_str()),
        report_interval: Duration::from_millis(options.report_interval_ms),
        max_transport_connections: usize::try_from(options.max_transport_connections)
            .unwrap_or(usize::MAX),
        max_grpc_streams: options.max_grpc_streams as usize,
        read_timeout: Duration::from_secs(options.read_timeout),
    };
    tracing::info!(
        socket = %options.socket.display(),
        workers,
        version = env!("CARGO_PKG_VERSION"),
        "sentinel-ws-agent listening (protocol v1 and v2)"
    );
    let listener = tokio::spawn(uds::serve(socket, context.clone()));
    if let (Some(address), Some(grpc)) = (&options.grpc_address, grpc_listener) {
        let local = grpc.local_addr().map_err(|source| RunError::Grpc {
            address: address.clone(),
            source,
        })?;
        if tls.is_none() && !local.ip().is_loopback() {
            tracing::warn!(
                address = %local,
                "gRPC is served without TLS on a non-loopback address; keep it on loopback or use --grpc-tls-cert/--grpc-tls-key"
            );
        }
        tracing::info!(
            address = %local,
            tls = tls.is_some(),
            mutual_tls = tls.as_ref().is_some_and(|t| t.mutual),
            "serving gRPC (sentinel.agent.v1, sentinel.agent.v2, zentinel.agent.v2)"
        );
        let serving = match grpc::server(grpc, context.clone(), tls) {
            Ok(serving) => serving,
            Err(error) => {
                agent.stop();
                return Err(RunError::Grpc {
                    address: address.clone(),
                    source: std::io::Error::other(error),
                });
            }
        };
        tokio::spawn(async move {
            if let Err(error) = serving.await {
                tracing::error!(%error, "gRPC server failed");
            }
        });
    }

    let signal = termination_signal().await;
    tracing::info!(
        signal,
        open_connections = lifecycle.open_connections(),
        "draining"
    );
    lifecycle.start_drain();
    let _ = listener.await;
    let drain_timeout = Duration::from_secs(options.drain_timeout);
    tokio::select! {
        outcome = lifecycle.wait_idle(drain_timeout) => match outcome {
            DrainOutcome::Idle => tracing::info!("drained: no proxy connection left"),
            DrainOutcome::TimedOut => tracing::warn!(
                open_connections = lifecycle.open_connections(),
                "drain timeout reached; exiting with connections open"
            ),
        },
        signal = termination_signal() => tracing::warn!(signal, "second signal: exiting at once"),
    }
    agent.stop();
    let _ = tokio::time::timeout(Duration::from_secs(2), router_handle).await;
    Ok(())
}
