//! Generates the gRPC code from `proto/` with protox (a protobuf compiler written in Rust), so that
//! building the agent needs no system `protoc`. `proto/agent_v2.proto` declares
//! `sentinel.agent.v2`; the Zentinel proxies use the same messages and service under
//! `zentinel.agent.v2`, so the file is compiled a second time with only its package line changed.
//! That second package's messages are mapped onto the `sentinel.agent.v2` ones with `extern_path`:
//! the message types are generated once, and only the zentinel service (whose gRPC paths differ)
//! is generated again, over the same types.

use std::path::PathBuf;

/// The Rust module that holds the `sentinel.agent.v2` types (`src/transport/grpc/proto.rs`).
const SHARED_V2_MESSAGES: &str = "crate::transport::grpc::proto::sentinel_v2";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let v2_source = std::fs::read_to_string("proto/agent_v2.proto")?;
    let sentinel_package = "package sentinel.agent.v2;";
    if !v2_source.contains(sentinel_package) {
        return Err("proto/agent_v2.proto must declare `package sentinel.agent.v2;`".into());
    }
    let zentinel_dir = out_dir.join("zentinel-proto");
    std::fs::create_dir_all(&zentinel_dir)?;
    std::fs::write(
        zentinel_dir.join("zentinel_agent_v2.proto"),
        v2_source.replace(sentinel_package, "package zentinel.agent.v2;"),
    )?;

    let descriptors = protox::compile(
        [
            "agent_v1.proto",
            "agent_v2.proto",
            "zentinel_agent_v2.proto",
        ],
        [PathBuf::from("proto"), zentinel_dir],
    )?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .extern_path(".zentinel.agent.v2", SHARED_V2_MESSAGES)
        .compile_fds(descriptors)?;

    println!("cargo:rerun-if-changed=proto/agent_v1.proto");
    println!("cargo:rerun-if-changed=proto/agent_v2.proto");
    println!("cargo:rerun-if-changed=build.rs");
    Ok(())
}
