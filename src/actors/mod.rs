//! The actor system (ractor): a router supervising one connection actor per WebSocket
//! (`correlation_id`) and a pool of stateless detector actors. Transports reach it only through
//! [`crate::agent::Agent`]; every frame handed in is answered exactly once through its
//! [`Responder`], even when an actor crashes. Client IPs learned from upgrade requests wait in
//! [`upgrades`] for their WebSocket's first frame.

pub mod connection;
pub mod detector;
pub mod reply;
pub mod router;
pub mod upgrades;

pub use reply::{Answer, ReplyTarget, Responder};
