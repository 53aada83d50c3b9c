//! sentinel-ws-agent: a WebSocket Inspector agent for the Sentinel and Zentinel reverse proxies.
//!
//! A frame travels transport -> router registry -> connection actor -> detector pool -> transport.
//! See `README.md` for the operator's view and `docs/` for design notes.

#![warn(missing_docs)]

pub mod inspect;
pub mod model;
pub mod options;
pub mod util;
