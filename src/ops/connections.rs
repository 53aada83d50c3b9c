//! `/connections`: the tracked WebSocket connections as an operator sees them, read from the
//! registry's shared figures without messaging any actor.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::actors::connection::{bucket_level, ConnectionShared};
use crate::agent::Agent;
use crate::clock;

/// One tracked WebSocket connection as an operator sees it (`/connections`).
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionView {
    /// The correlation id.
    pub correlation_id: String,
    /// The proxy's route id, if sent.
    pub route: Option<String>,
    /// The client's IP, if sent.
    pub client_ip: Option<String>,
    /// Seconds since the agent first saw it.
    pub age_secs: f64,
    /// Seconds since its last frame.
    pub idle_secs: f64,
    /// Frames per direction.
    pub frames: PerDirection,
    /// Payload bytes per direction.
    pub bytes: PerDirection,
    /// Message bucket level (tokens), when a message rate applies.
    pub message_bucket: Option<f64>,
    /// Byte bucket level, when a byte rate applies.
    pub byte_bucket: Option<f64>,
    /// Bytes held for unfinished messages.
    pub reassembly_bytes: u64,
    /// The last violation tag raised.
    pub last_detection: Option<&'static str>,
}

/// A figure per direction.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PerDirection {
    /// Client to server.
    pub client_to_server: u64,
    /// Server to client.
    pub server_to_client: u64,
}

impl ConnectionView {
    fn of(id: &str, shared: &ConnectionShared, now: u64) -> Self {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let secs = |nanos: u64| now.saturating_sub(nanos) as f64 / 1e9;
        ConnectionView {
            correlation_id: id.to_string(),
            route: shared.route_id.get().map(|r| r.to_string()),
            client_ip: shared.client_ip.get().map(|r| r.to_string()),
            age_secs: secs(load(&shared.created_nanos)),
            idle_secs: secs(load(&shared.last_seen_nanos)),
            frames: PerDirection {
                client_to_server: load(&shared.frames[0]),
                server_to_client: load(&shared.frames[1]),
            },
            bytes: PerDirection {
                client_to_server: load(&shared.bytes[0]),
                server_to_client: load(&shared.bytes[1]),
            },
            message_bucket: bucket_level(load(&shared.message_tokens)),
            byte_bucket: bucket_level(load(&shared.byte_tokens)),
            reassembly_bytes: load(&shared.reassembly_bytes),
            last_detection: shared.last_tag().map(|t| t.as_str()),
        }
    }

    fn total_frames(&self) -> u64 {
        self.frames.client_to_server + self.frames.server_to_client
    }
}

/// The tracked connections, most active (most frames) first, at most `limit`.
pub fn connections(agent: &Agent, limit: usize) -> Vec<ConnectionView> {
    let now = clock::now_nanos();
    let mut views: Vec<ConnectionView> = agent
        .registry()
        .iter()
        .map(|entry| ConnectionView::of(entry.key(), &entry.shared, now))
        .collect();
    let by_activity =
        |a: &ConnectionView, b: &ConnectionView| b.total_frames().cmp(&a.total_frames());
    if limit < views.len() {
        if limit > 0 {
            views.select_nth_unstable_by(limit - 1, by_activity);
        }
        views.truncate(limit);
    }
    views.sort_by(by_activity);
    views
}
