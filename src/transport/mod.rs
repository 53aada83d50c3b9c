//! Transports: turn the proxies' wire messages into [`crate::model::Frame`]s and verdicts back
//! into wire messages. One Unix socket serves both protocol v1 (length-prefixed JSON) and v2
//! (length + type byte), told apart by the first byte after the first length; gRPC serves the v1
//! `AgentProcessor` and `AgentServiceV2` under both proxies' packages.

pub mod framing;
pub mod grpc;
pub mod json_wire;
pub mod reports;
pub mod uds;
pub mod v1;
pub mod v2;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::agent::Agent;
use crate::health::HealthReport;
use crate::lifecycle::Lifecycle;

/// What every transport needs from the running agent.
#[derive(Debug, Clone)]
pub struct TransportContext {
    /// The agent frames are handed to.
    pub agent: Agent,
    /// Drain state and connection accounting.
    pub lifecycle: Arc<Lifecycle>,
    /// The current health, updated on every change.
    pub health: watch::Receiver<HealthReport>,
    /// The id reported in capabilities, health and metrics.
    pub agent_id: Arc<str>,
    /// How often health and metrics are reported on v2 connections.
    pub report_interval: Duration,
    /// Most Unix socket connections served at once.
    pub max_transport_connections: usize,
    /// Most gRPC streams served at once (all gRPC connections together).
    pub max_grpc_streams: usize,
    /// How long a peer may take to send a complete first message, or to finish one it started.
    pub read_timeout: Duration,
}
