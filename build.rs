//! Generates the gRPC code from `proto/` with protox (a protobuf compiler written in Rust), so that
//! building the agent needs no system `protoc`. `proto/agent_v2.proto` declares
//! `sentinel.agent.v2`; the Zentinel proxies use the same messages under `zentinel.agent.v2`, so the
//! file is compiled a second time with only its package line changed.

use std::path::PathBuf;

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
        .compile_fds(descriptors)?;

    println!("cargo:rerun-if-changed=proto/agent_v1.proto");
    println!("cargo:rerun-if-changed=proto/agent_v2.proto");
    println!("cargo:rerun-if-changed=build.rs");
    Ok(())
}
