//! sentinel-ws-agent: a WebSocket Inspector agent for the Sentinel and Zentinel reverse proxies.
//!
//! A frame travels transport ([`transport`]) -> router registry -> connection actor ([`actors`];
//! rate buckets and reassembly from [`limits`]) -> detector pool ([`pipeline`], [`inspect`],
//! [`validate`]) -> back to the transport as a [`model::Verdict`]. See `README.md` for the
//! operator's view.

#![warn(missing_docs)]

pub mod actors;
pub mod agent;
pub mod clock;
pub mod compiler;
#[cfg(feature = "fault-injection")]
pub mod fault_injection;
pub mod inspect;
pub mod lifecycle;
pub mod limits;
pub mod model;
pub mod ops;
pub mod options;
pub mod pipeline;
pub mod policy;
pub mod routes;
/// The health state, now in [`ops::health`]; this path stays for the transports and fuzz targets
/// that name it.
pub use ops::health;
pub mod server;
pub mod shared_limits;
pub mod telemetry;
#[doc(hidden)]
pub mod testdata;
pub mod transport;
pub mod util;
pub mod validate;
