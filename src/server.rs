//! Wires the pieces together for the binary, in the manner of mini-redis: [`Listeners`] binds and
//! serves every socket, [`ActorSystem`] starts and stops the actors, and a
//! [`crate::lifecycle::Shutdown`] per stage hears the termination signals (the first drains, a
//! second exits at once).

use std::sync::Arc;
use std::time::Duration;

use crate::agent::{Agent, AgentSettings, StartError};
use crate::compiler::CompileLimits;
use crate::lifecycle::{DrainOutcome, Lifecycle, Signals};
use crate::ops::{health, http};
use crate::options::Options;
use crate::policy::{Policy, PolicyError};
use crate::routes::PolicySet;
use crate::shared_limits::{IpLimiter, SharedLimitSettings};
use crate::telemetry;
use crate::transport::uds::{self, BindError};
use crate::transport::{grpc, TransportContext};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How long the router may take to stop its actors at exit.
const ROUTER_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The start-up policy is invalid.
    #[error("invalid configuration: {0}")]
    Policy(#[from] PolicyError),
    /// The policy file (`--policy-file`) is unusable (the binary exits with status 2).
    #[error("invalid policy file: {0}")]
    PolicyFile(PolicyError),
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
    /// `--debug-panic-marker` was given to a build without the `fault-injection` feature.
    #[error("--debug-panic-marker (WS_DEBUG_PANIC_MARKER) is a test hook this build does not have: unset it, or build with `--features fault-injection` for fault-injection tests")]
    FaultInjectionUnavailable,
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

impl RunError {
    /// The exit status for this error: 2 for a bad policy file, 1 otherwise.
    pub fn exit_status(&self) -> i32 {
        match self {
            RunError::PolicyFile(_) => 2,
            _ => 1,
        }
    }
}

/// Runs the agent until SIGTERM/SIGINT and the drain that follows: bind every listener, start the
/// actor system, serve, then on the first signal drain (a second one exits at once) and stop.
pub async fn run(options: Options) -> Result<(), RunError> {
    let compile_limits = CompileLimits::from_options(&options);
    // Route counters are registered while the policies compile: the recorder comes first.
    let prometheus = telemetry::install_recorder();
    telemetry::Telemetry::get();
    // The start-up configuration obeys the same bounds as a pushed one (with detailed errors:
    // the operator wrote it). The flags must hold on their own first (their errors name the flag).
    let policy = Policy::compile_with(options.policy.clone(), &compile_limits.for_startup())?;
    let policies = match &options.policy_file {
        Some(path) => {
            crate::routes::load_file(path, options.policy.clone(), &compile_limits.for_startup())
                .map_err(RunError::PolicyFile)?
        }
        None => PolicySet::single(policy),
    };
    arm_fault_injection(options.debug_panic_marker.as_deref())?;
    let tls = match (&options.grpc_tls_cert, &options.grpc_tls_key) {
        (Some(cert), Some(key)) => Some(grpc::GrpcTls::load(
            cert,
            key,
            options.grpc_tls_client_ca.as_deref(),
        )?),
        _ => None,
    };
    // Listening from the start: a signal during start-up begins the drain as soon as serving has
    // started.
    let signals = Signals::listen();
    let mut shutdown = signals.shutdown();
    // SIGHUP is caught before the socket accepts: a reload sent as soon as the agent is reachable
    // must not end it (the default action).
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    let lifecycle = Lifecycle::new();

    // Everything that can fail is bound before the actor system starts: a start that fails (a
    // port taken) exits without detectors to stop (they were restarted in a storm otherwise).
    let ip_limiter = IpLimiter::start(&SharedLimitSettings {
        redis_url: options.redis_url.clone(),
        peers_hint: options.redis_peers_hint,
        max_tracked_ips: usize::try_from(options.max_tracked_ips).unwrap_or(usize::MAX),
    })?;
    let listeners = Listeners::bind(&options).await?;
    let actors = ActorSystem::start(policies, &options, compile_limits, ip_limiter).await?;
    tokio::spawn(reload_on_sighup(actors.agent.clone(), hangups));
    let context = TransportContext {
        health: health::spawn_monitor(actors.agent.clone(), Arc::clone(&lifecycle)),
        agent: actors.agent.clone(),
        lifecycle: Arc::clone(&lifecycle),
        agent_id: Arc::from(options.agent_id.as_str()),
        report_interval: Duration::from_millis(options.report_interval_ms),
        max_transport_connections: usize::try_from(options.max_transport_connections)
            .unwrap_or(usize::MAX),
        max_grpc_streams: options.max_grpc_streams as usize,
        read_timeout: Duration::from_secs(options.read_timeout),
    };
    let accepting = match listeners.serve(&options, context, prometheus, tls) {
        Ok(accepting) => accepting,
        Err(error) => {
            actors.stop().await;
            return Err(error);
        }
    };

    let signal = shutdown.recv().await;
    tracing::info!(
        signal,
        open_connections = lifecycle.open_connections(),
        "draining"
    );
    lifecycle.start_drain();
    let _ = accepting.await;
    // Subscribed after the first signal: it hears only a second one.
    let mut second = signals.shutdown();
    let drain_timeout = Duration::from_secs(options.drain_timeout);
    tokio::select! {
        outcome = lifecycle.wait_idle(drain_timeout) => match outcome {
            DrainOutcome::Idle => tracing::info!("drained: no proxy connection left"),
            DrainOutcome::TimedOut => tracing::warn!(
                open_connections = lifecycle.open_connections(),
                "drain timeout reached; exiting with connections open"
            ),
        },
        signal = second.recv() => tracing::warn!(signal, "second signal: exiting at once"),
    }
    actors.stop().await;
    Ok(())
}

/// Every listener the options ask for, bound before anything starts.
struct Listeners {
    metrics: Option<TcpListener>,
    grpc: Option<TcpListener>,
    socket: uds::BoundSocket,
}

impl Listeners {
    /// Binds the metrics and gRPC addresses (when given) and the Unix socket.
    async fn bind(options: &Options) -> Result<Listeners, RunError> {
        let metrics = match &options.metrics_address {
            Some(address) => {
                Some(
                    TcpListener::bind(address)
                        .await
                        .map_err(|source| RunError::Metrics {
                            address: address.clone(),
                            source,
                        })?,
                )
            }
            None => None,
        };
        let grpc = match &options.grpc_address {
            Some(address) => {
                Some(
                    TcpListener::bind(address)
                        .await
                        .map_err(|source| RunError::Grpc {
                            address: address.clone(),
                            source,
                        })?,
                )
            }
            None => None,
        };
        let socket = uds::bind(&options.socket, options.socket_mode).await?;
        Ok(Listeners {
            metrics,
            grpc,
            socket,
        })
    }

    /// Starts serving on every listener; the handle resolves once the Unix socket listener has
    /// stopped accepting (on drain).
    fn serve(
        self,
        options: &Options,
        context: TransportContext,
        prometheus: Option<PrometheusHandle>,
        tls: Option<grpc::GrpcTls>,
    ) -> Result<JoinHandle<()>, RunError> {
        if let (Some(listener), Some(handle)) = (self.metrics, prometheus) {
            tracing::info!(
                address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
                "serving /metrics, /healthz, /readyz, /connections"
            );
            tokio::spawn(http::serve(
                listener,
                handle,
                Arc::clone(&context.lifecycle),
                context.agent.clone(),
            ));
        }
        tracing::info!(
            socket = %options.socket.display(),
            workers = options.worker_count(),
            version = env!("CARGO_PKG_VERSION"),
            "sentinel-ws-agent listening (protocol v1 and v2)"
        );
        let accepting = tokio::spawn(uds::serve(self.socket, context.clone()));
        if let (Some(address), Some(grpc)) = (&options.grpc_address, self.grpc) {
            let grpc_error = |source| RunError::Grpc {
                address: address.clone(),
                source,
            };
            let local = grpc.local_addr().map_err(grpc_error)?;
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
            let serving = grpc::server(grpc, context, tls)
                .map_err(|error| grpc_error(std::io::Error::other(error)))?;
            tokio::spawn(async move {
                if let Err(error) = serving.await {
                    tracing::error!(%error, "gRPC server failed");
                }
            });
        }
        Ok(accepting)
    }
}

/// The actor system: the agent handle the transports use and the router task behind it.
struct ActorSystem {
    agent: Agent,
    router: JoinHandle<()>,
}

impl ActorSystem {
    /// Starts the router, its detectors and the configuration compiler.
    async fn start(
        policies: PolicySet,
        options: &Options,
        compile_limits: CompileLimits,
        ip_limiter: Arc<IpLimiter>,
    ) -> Result<ActorSystem, StartError> {
        let (agent, router) = Agent::start_with_set(
            policies,
            AgentSettings {
                workers: options.worker_count(),
                max_buffered_bytes: options.max_buffered_bytes,
                hibernate_after: Duration::from_secs(options.hibernate_after),
                compile_limits,
                policy_file: options.policy_file.clone(),
                ip_limiter: Some(ip_limiter),
            },
        )
        .await?;
        Ok(ActorSystem { agent, router })
    }

    /// Stops every actor and waits (briefly) for the router to finish.
    async fn stop(self) {
        self.agent.stop();
        let _ = tokio::time::timeout(ROUTER_STOP_TIMEOUT, self.router).await;
    }
}

/// Arms the fault-injection test hook when `--debug-panic-marker` is set; a build without the
/// `fault-injection` feature refuses the option instead of ignoring it.
fn arm_fault_injection(marker: Option<&str>) -> Result<(), RunError> {
    let Some(marker) = marker else {
        return Ok(());
    };
    #[cfg(feature = "fault-injection")]
    {
        tracing::warn!(
            "--debug-panic-marker is set: detectors will panic on purpose (testing only)"
        );
        crate::fault_injection::arm(marker);
        Ok(())
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = marker;
        Err(RunError::FaultInjectionUnavailable)
    }
}

/// Reloads the policy file on every SIGHUP (checked whole on the compiler thread; a bad file is
/// logged and counted, and the running policies stay).
async fn reload_on_sighup(agent: Agent, hangups: std::io::Result<tokio::signal::unix::Signal>) {
    let mut hangups = match hangups {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP: policy file reloads need a configure push");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the policy file");
        let _ = agent.reload_policy_file().await;
    }
}
