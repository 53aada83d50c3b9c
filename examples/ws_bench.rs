//! End-to-end WebSocket load: an echo backend, and a closed-loop client that drives WebSocket
//! messages through a real proxy (which asks the agent about every frame) and measures what a
//! user sees. `scripts/bench-e2e` runs it against Sentinel and Zentinel, once with this agent and
//! once with an allow-everything agent (`loadgen --echo-server`), in the same run.
//!
//! ```text
//! ws_bench serve 127.0.0.1:9000
//! ws_bench drive ws://127.0.0.1:8080/ws [--connections 8] [--duration 10] [--warmup 2]
//!     [--size 100] [--json]
//! ```
//!
//! `drive` opens the connections, then each one sends a text message of `--size` bytes (ordinary
//! chat), waits for the echo and sends the next; messages/s and the latency percentiles of the
//! round trips after the warm-up are printed (one JSON object with `--json`). A message that does
//! not come back, or comes back changed, counts as an error.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// What one connection measured.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: ws_bench serve ADDR | ws_bench drive URL [--connections N] [--duration S] \
         [--warmup S] [--size BYTES] [--json]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match args.first().map(String::as_str) {
        Some("serve") => {
            let Some(addr) = args.get(1).and_then(|a| a.parse::<SocketAddr>().ok()) else {
                return usage();
            };
            match runtime.block_on(serve(addr)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("echo backend on {addr}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("drive") => {
            let Some(url) = args.get(1).cloned() else {
                return usage();
            };
            let mut drive = Drive {
                url,
                connections: 8,
                duration: Duration::from_secs(10),
                warmup: Duration::from_secs(2),
                size: 100,
                json: false,
            };
            let mut rest = args[2..].iter();
            while let Some(flag) = rest.next() {
                let mut number = |name: &str| -> Option<u64> {
                    let value = rest.next().and_then(|v| v.parse().ok());
                    if value.is_none() {
                        eprintln!("{name} needs a number");
                    }
                    value
                };
                match flag.as_str() {
                    "--connections" => match number("--connections") {
                        Some(n) if n > 0 => drive.connections = n as usize,
                        _ => return usage(),
                    },
                    "--duration" => match number("--duration") {
                        Some(n) => drive.duration = Duration::from_secs(n),
                        None => return usage(),
                    },
                    "--warmup" => match number("--warmup") {
                        Some(n) => drive.warmup = Duration::from_secs(n),
                        None => return usage(),
                    },
                    "--size" => match number("--size") {
                        Some(n) if n > 0 => drive.size = n as usize,
                        _ => return usage(),
                    },
                    "--json" => drive.json = true,
                    _ => return usage(),
                }
            }
            match runtime.block_on(drive.run()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("drive {}: {e}", drive.url);
                    ExitCode::FAILURE
                }
            }
        }
        _ => usage(),
    }
}

/// The echo backend: every text or binary message is sent back unchanged.
async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    eprintln!("ws_bench echo backend on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            while let Some(Ok(message)) = ws.next().await {
                if matches!(message, Message::Close(_)) {
                    return;
                }
                let echo = matches!(message, Message::Text(_) | Message::Binary(_));
                if echo && ws.send(message).await.is_err() {
                    return;
                }
            }
        });
    }
}

struct Drive {
    url: String,
    connections: usize,
    duration: Duration,
    warmup: Duration,
    size: usize,
    json: bool,
}

impl Drive {
    async fn run(&self) -> Result<(), String> {
        let text = chat_message(self.size);
        let measuring = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::with_capacity(self.connections);
        for _ in 0..self.connections {
            let (ws, _) = tokio_tungstenite::connect_async(self.url.as_str())
                .await
                .map_err(|e| format!("cannot open a WebSocket: {e}"))?;
            let text = text.clone();
            let measuring = Arc::clone(&measuring);
            let stop = Arc::clone(&stop);
            tasks.push(tokio::spawn(connection(ws, text, measuring, stop)));
        }
        tokio::time::sleep(self.warmup).await;
        measuring.store(true, Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(self.duration).await;
        stop.store(true, Ordering::Relaxed);
        let elapsed = started.elapsed();
        let mut all = Tally::default();
        for task in tasks {
            let tally = task
                .await
                .map_err(|e| format!("a connection task failed: {e}"))?;
            all.latencies_us.extend(tally.latencies_us);
            all.errors += tally.errors;
        }
        all.latencies_us.sort_unstable();
        let count = all.latencies_us.len();
        let at = |q: f64| -> u32 {
            if count == 0 {
                0
            } else {
                all.latencies_us[((count as f64 * q) as usize).min(count - 1)]
            }
        };
        let rate = count as f64 / elapsed.as_secs_f64();
        if self.json {
            println!(
                "{{\"url\":{:?},\"connections\":{},\"size\":{},\"seconds\":{:.3},\"messages\":{},\
                 \"messages_per_s\":{:.1},\"p50_us\":{},\"p99_us\":{},\"p99_9_us\":{},\
                 \"errors\":{}}}",
                self.url,
                self.connections,
                self.size,
                elapsed.as_secs_f64(),
                count,
                rate,
                at(0.50),
                at(0.99),
                at(0.999),
                all.errors
            );
        } else {
            println!(
                "{}: {} connections, {} B messages: {:.0} messages/s, p50 {} us, p99 {} us, \
                 p99.9 {} us, {} errors",
                self.url,
                self.connections,
                self.size,
                rate,
                at(0.50),
                at(0.99),
                at(0.999),
                all.errors
            );
        }
        Ok(())
    }
}

/// Ordinary chat of `size` bytes: nothing a detector flags.
fn chat_message(size: usize) -> String {
    const WORDS: &str = "hey, are we still meeting at noon tomorrow? I can bring the slides and \
                         the numbers from last week so we can go through them together ";
    WORDS.chars().cycle().take(size).collect()
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// One closed-loop connection: send, wait for the echo, repeat until `stop`.
async fn connection(
    mut ws: Socket,
    text: String,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Tally {
    let mut tally = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        if ws.send(Message::text(text.clone())).await.is_err() {
            tally.errors += 1;
            break;
        }
        let answer = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        let ok = matches!(&answer, Ok(Some(Ok(Message::Text(t)))) if t.as_str() == text);
        if measuring.load(Ordering::Relaxed) {
            if ok {
                let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                tally.latencies_us.push(us);
            } else {
                tally.errors += 1;
            }
        }
        if !ok {
            break;
        }
    }
    let _ = ws.close(None).await;
    tally
}
