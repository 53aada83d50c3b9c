//! Operations: what operators look at, built on top of the core and never used by it. The health
//! state the transports report ([`health`]), the HTTP endpoint with `/metrics`, `/healthz`,
//! `/readyz` and `/connections` ([`http`]), and the view of one tracked connection
//! ([`connections`]).

pub mod connections;
pub mod health;
pub mod http;
