//! Code generated from `proto/` by the build script (prost messages and tonic server traits).

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// `sentinel.agent.v1`: the v1 gRPC service Sentinel 0.4.x calls.
pub mod sentinel_v1 {
    tonic::include_proto!("sentinel.agent.v1");
}

/// `sentinel.agent.v2`: the v2 messages (the types of both packages) and AgentServiceV2 as Sentinel
/// names it. build.rs names this module's path in its `extern_path` mapping.
pub mod sentinel_v2 {
    tonic::include_proto!("sentinel.agent.v2");
}

/// `zentinel.agent.v2`: AgentServiceV2 as Zentinel names it, over `sentinel_v2`'s messages (the
/// package's own copies are mapped onto them by build.rs, so none are generated here).
pub mod zentinel_v2 {
    tonic::include_proto!("zentinel.agent.v2");
}
