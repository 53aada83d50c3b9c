//! The actor system (ractor): a router supervising one connection actor per WebSocket
//! (`correlation_id`) and a pool of stateless detector actors. Transports reach it only through
//! [`crate::agent::Agent`]; every frame handed in is answered exactly once through its
//! [`Responder`], even when an actor crashes.

pub mod connection;
pub mod detector;
pub mod reply;
pub mod router;

pub use reply::{Answer, ReplyTarget, Responder};
