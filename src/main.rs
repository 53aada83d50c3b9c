//! The `sentinel-ws-agent` binary: parses options, sets up logging, runs the agent.

use anyhow::Context;
use sentinel_ws_agent::options::{LogFormat, Options};
use sentinel_ws_agent::server;
use sentinel_ws_agent::util::for_log;
use tracing_subscriber::EnvFilter;

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc options: give freed pages back to the system within about a second, from a background
/// thread, so memory comes back down after connections are evicted. `_RJEM_MALLOC_CONF` overrides.
#[cfg(not(target_env = "msvc"))]
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> anyhow::Result<()> {
    let options = Options::parse_from_env().unwrap_or_else(|e| e.exit());
    init_logging(options.log_format);
    install_panic_hook();
    let workers = options.worker_count();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(workers.clamp(1, 64))
        .thread_name("ws-agent")
        .build()
        .context("cannot start the async runtime")?;
    if let Err(error) = runtime.block_on(server::run(options)) {
        // Logged once, in the configured format; the exit status tells supervisors.
        tracing::error!(%error, "sentinel-ws-agent cannot start");
        drop(runtime);
        std::process::exit(error.exit_status());
    }
    Ok(())
}

/// A panic (a detector failing on a message: the actor system catches it and restarts the actor)
/// is one log line with its message and place, in the configured format, never a backtrace of
/// ~150 lines per occurrence (`RUST_BACKTRACE` does not change that).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(
            panic = %for_log(message),
            %location,
            "panic (caught: the failed actor is restarted)"
        );
    }));
}

fn init_logging(format: LogFormat) {
    // ractor opens a tracing span per actor at INFO; with one actor per WebSocket that costs memory
    // and time on every message, so its spans are off unless RUST_LOG asks for them.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,ractor=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
