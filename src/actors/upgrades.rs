//! Client IPs and route ids of WebSockets learned from their upgrade requests, for frames that
//! carry neither (a gRPC v2 frame event has no `client_ip` and no `route_id` field). A proxy that
//! sends a route's request headers to the agent names the client IP and the route of each request
//! in a RequestHeaders event whose correlation id is the one the WebSocket's frames will carry;
//! the transports hand them in here ([`UpgradeRequests::learn`]), before they answer the event, so
//! they are known before any frame of that WebSocket can arrive.
//!
//! A connection takes them on its first frame ([`UpgradeRequests::take`]) and keeps them from then
//! on (hibernation included): the IP for its per-IP budget, the route for its policy. Entries no
//! frame took (plain HTTP requests on the route) are bounded like connections: at most
//! `--max-connections` at once (the oldest forgotten first) and forgotten after `--idle-timeout`
//! (the router sweeps them with the connections).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

/// Longest correlation id remembered (the proxies send a trace id of a few dozen bytes); a
/// longer one is not remembered, so one entry holds at most about 350 bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Longest client IP remembered (an IPv6 address with a zone fits).
pub const MAX_IP_BYTES: usize = 64;
/// Longest route id remembered (route ids are configuration names of a few dozen bytes).
pub const MAX_ROUTE_BYTES: usize = 256;

/// What an upgrade request named about its WebSocket; each part only when it was usable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upgrade {
    /// The client IP of the request.
    pub client_ip: Option<Arc<str>>,
    /// The proxy's id of the route the request matched.
    pub route_id: Option<Arc<str>>,
}

/// One learned request.
#[derive(Debug)]
struct Learned {
    upgrade: Upgrade,
    /// [`crate::clock::now_nanos`] when it was learned.
    at: u64,
}

/// `correlation_id -> (client IP, route id)` of upgrade requests whose WebSocket sent no frame
/// yet.
#[derive(Debug, Default)]
pub struct UpgradeRequests {
    entries: DashMap<Arc<str>, Learned>,
    /// Entries forgotten at capacity or idle, for tests and the debug log.
    forgotten: AtomicU64,
}

impl UpgradeRequests {
    /// Remembers `client_ip` and `route_id` for the WebSocket `correlation_id` (a later event for
    /// the same id replaces them). Empty or over-long values are not remembered; nothing is when
    /// neither is left. `max`: `--max-connections`.
    pub fn learn(
        &self,
        correlation_id: &str,
        client_ip: &str,
        route_id: Option<&str>,
        max: usize,
        now: u64,
    ) {
        let usable = |value: &str, limit: usize| !value.is_empty() && value.len() <= limit;
        let upgrade = Upgrade {
            client_ip: usable(client_ip, MAX_IP_BYTES).then(|| Arc::from(client_ip)),
            route_id: route_id
                .filter(|route| usable(route, MAX_ROUTE_BYTES))
                .map(Arc::from),
        };
        if !usable(correlation_id, MAX_ID_BYTES) || upgrade == Upgrade::default() {
            return;
        }
        let max = max.max(1);
        if !self.entries.contains_key(correlation_id) && self.entries.len() >= max {
            self.evict_oldest(max);
        }
        self.entries
            .insert(Arc::from(correlation_id), Learned { upgrade, at: now });
    }

    /// What was learned for `correlation_id`, which is forgotten here (its connection keeps it).
    pub fn take(&self, correlation_id: &str) -> Option<Upgrade> {
        if self.entries.is_empty() {
            return None;
        }
        self.entries
            .remove(correlation_id)
            .map(|(_, learned)| learned.upgrade)
    }

    /// Forgets entries learned more than `idle_nanos` before `now`.
    pub fn sweep(&self, now: u64, idle_nanos: u64) {
        let before = self.entries.len();
        self.entries
            .retain(|_, learned| now.saturating_sub(learned.at) <= idle_nanos);
        let swept = before.saturating_sub(self.entries.len());
        if swept > 0 {
            self.forgotten.fetch_add(swept as u64, Ordering::Relaxed);
            tracing::debug!(
                forgotten = swept,
                "upgrade requests whose WebSocket sent no frame forgotten"
            );
        }
        if self.entries.capacity() > 4096 && self.entries.len() < self.entries.capacity() / 8 {
            self.entries.shrink_to_fit();
        }
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets the oldest entries so that one more fits under `max`, plus 1% of `max` so that a
    /// stream of new requests does not pay a full scan each.
    fn evict_oldest(&self, max: usize) {
        let excess = (self.entries.len() + 1).saturating_sub(max);
        let mut by_age: Vec<(u64, Arc<str>)> = self
            .entries
            .iter()
            .map(|e| (e.value().at, Arc::clone(e.key())))
            .collect();
        let count = (excess + max / 100).max(1).min(by_age.len());
        if count == 0 {
            return;
        }
        if count < by_age.len() {
            by_age.select_nth_unstable_by_key(count - 1, |(at, _)| *at);
        }
        for (_, id) in by_age.into_iter().take(count) {
            self.entries.remove(&id);
        }
        self.forgotten.fetch_add(count as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip_of(upgrade: Option<Upgrade>) -> Option<Arc<str>> {
        upgrade.and_then(|u| u.client_ip)
    }

    #[test]
    fn a_learned_request_is_taken_once() {
        let ips = UpgradeRequests::default();
        ips.learn("ws-1", "198.51.100.1", Some("chat"), 10, 0);
        let upgrade = ips.take("ws-1").unwrap();
        assert_eq!(upgrade.client_ip.as_deref(), Some("198.51.100.1"));
        assert_eq!(upgrade.route_id.as_deref(), Some("chat"));
        assert_eq!(ips.take("ws-1"), None);
        assert_eq!(ips.take("other"), None);
    }

    #[test]
    fn a_later_request_of_the_same_id_replaces_the_ip() {
        let ips = UpgradeRequests::default();
        ips.learn("ws-1", "198.51.100.1", None, 1, 0);
        ips.learn("ws-1", "198.51.100.2", None, 1, 1);
        assert_eq!(ips.len(), 1);
        assert_eq!(ip_of(ips.take("ws-1")).as_deref(), Some("198.51.100.2"));
    }

    #[test]
    fn empty_and_overlong_values_are_not_remembered() {
        let ips = UpgradeRequests::default();
        ips.learn("", "198.51.100.1", Some("chat"), 10, 0);
        ips.learn("ws-1", "", None, 10, 0);
        ips.learn("ws-1", "", Some(""), 10, 0);
        ips.learn(&"i".repeat(MAX_ID_BYTES + 1), "198.51.100.1", None, 10, 0);
        ips.learn("ws-2", &"1".repeat(MAX_IP_BYTES + 1), None, 10, 0);
        let long_route = "r".repeat(MAX_ROUTE_BYTES + 1);
        ips.learn("ws-3", "", Some(&long_route), 10, 0);
        assert!(ips.is_empty());
    }

    #[test]
    fn a_route_alone_or_an_ip_alone_is_remembered() {
        let ips = UpgradeRequests::default();
        ips.learn("ws-1", "", Some("trading"), 10, 0);
        ips.learn("ws-2", "198.51.100.1", Some(""), 10, 0);
        let route_only = ips.take("ws-1").unwrap();
        assert_eq!(route_only.client_ip, None);
        assert_eq!(route_only.route_id.as_deref(), Some("trading"));
        let ip_only = ips.take("ws-2").unwrap();
        assert_eq!(ip_only.client_ip.as_deref(), Some("198.51.100.1"));
        assert_eq!(ip_only.route_id, None);
    }

    #[test]
    fn at_capacity_the_oldest_go_first() {
        let ips = UpgradeRequests::default();
        for n in 0..3u64 {
            ips.learn(&format!("ws-{n}"), "198.51.100.1", None, 3, n);
        }
        ips.learn("ws-new", "198.51.100.9", None, 3, 10);
        assert_eq!(ips.len(), 3);
        assert_eq!(ips.take("ws-0"), None, "the oldest was forgotten");
        assert!(ips.take("ws-1").is_some());
        assert!(ips.take("ws-new").is_some());
        assert_eq!(ips.forgotten.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn idle_entries_are_swept() {
        let ips = UpgradeRequests::default();
        ips.learn("old", "198.51.100.1", None, 10, 0);
        ips.learn("fresh", "198.51.100.2", None, 10, 90);
        ips.sweep(100, 50);
        assert_eq!(ips.take("old"), None);
        assert!(ips.take("fresh").is_some());
    }
}
