//! Transports: turn the proxies' wire messages into [`crate::model::Frame`]s and verdicts back
//! into wire messages. One Unix socket serves both protocol v1 (length-prefixed JSON) and v2
//! (length + type byte), told apart by the first byte after the first length.

pub mod framing;
pub mod json_wire;
pub mod uds;
pub mod v1;
pub mod v2;
