//! Test harness for the conformance tests: starts the real `sentinel-ws-agent` binary as a child
//! process on a private socket, waits until the socket accepts connections, exposes its log and
//! metrics endpoint, and kills it when dropped.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

pub mod raw;
pub mod redis;
pub mod v1;

/// How long the agent may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Path of the agent binary built by the same `cargo test --workspace` run.
pub fn agent_binary() -> PathBuf {
    if let Ok(path) = std::env::var("SENTINEL_WS_AGENT_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/sentinel-ws-agent
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let binary = profile_dir.join("sentinel-ws-agent");
    assert!(
        binary.exists(),
        "{} not found: run the tests with `cargo test --workspace` so the agent binary is built",
        binary.display()
    );
    binary
}

/// A running agent process.
pub struct Agent {
    child: Option<Child>,
    dir: tempfile::TempDir,
    socket: PathBuf,
    log: PathBuf,
}

/// Options for starting an agent.
#[derive(Default, Clone)]
pub struct AgentConfig {
    args: Vec<String>,
    env: Vec<(String, String)>,
    metrics: bool,
}

impl AgentConfig {
    /// Adds command-line arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the agent.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Serves the metrics endpoint on an ephemeral loopback port.
    pub fn with_metrics(mut self) -> Self {
        self.metrics = true;
        self
    }

    /// Starts the agent and waits until its socket accepts connections.
    pub fn start(self) -> Agent {
        Agent::start(self, None)
    }

    /// Like [`AgentConfig::start`] for an agent whose `--socket` argument is `path` (already in
    /// the arguments).
    pub fn start_at(self, path: &Path) -> Agent {
        Agent::start(self, Some(path.to_owned()))
    }
}

impl Agent {
    /// Starts the agent with default options.
    pub fn start_default() -> Agent {
        AgentConfig::default().start()
    }

    /// Starts the agent with `config`; on a private socket unless `socket` is given.
    fn start(config: AgentConfig, socket: Option<PathBuf>) -> Agent {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("agent.log");
        let mut command = Command::new(agent_binary());
        let socket = match socket {
            Some(path) => path,
            None => {
                let path = dir.path().join("agent.sock");
                command.arg("--socket").arg(&path);
                path
            }
        };
        command
            .args(&config.args)
            .env_remove("RUST_LOG")
            .env("RUST_LOG", "info,ractor=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        if config.metrics {
            command.args(["--metrics-address", "127.0.0.1:0"]);
        }
        for (key, value) in &config.env {
            command.env(key, value);
        }
        let child = command.spawn().expect("spawn agent");
        let mut agent = Agent {
            child: Some(child),
            dir,
            socket,
            log,
        };
        agent.wait_ready();
        agent
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("agent exited during start-up ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "agent did not listen within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The socket path as a string.
    pub fn socket_str(&self) -> String {
        self.socket.to_string_lossy().into_owned()
    }

    /// A scratch directory that lives as long as the agent.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the agent logged so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// Waits until the log contains `needle` (or panics after `timeout`).
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "log never contained {needle:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The metrics endpoint's address (requires [`AgentConfig::with_metrics`]).
    pub fn metrics_address(&self) -> String {
        let log = self.wait_for_log("serving /metrics", Duration::from_secs(10));
        let line = log
            .lines()
            .find(|l| l.contains("serving /metrics"))
            .expect("line");
        let start = line.find("address=").expect("address field") + "address=".len();
        line[start..]
            .split_whitespace()
            .next()
            .expect("address")
            .trim_matches('"')
            .to_string()
    }

    /// The gRPC address (start the agent with `--grpc-address 127.0.0.1:0`), as `http://host:port`.
    pub fn grpc_endpoint(&self) -> String {
        let log = self.wait_for_log("serving gRPC", Duration::from_secs(10));
        let line = log
            .lines()
            .find(|l| l.contains("serving gRPC"))
            .expect("line");
        let start = line.find("address=").expect("address field") + "address=".len();
        let address = line[start..]
            .split_whitespace()
            .next()
            .expect("address")
            .trim_matches('"');
        format!("http://{address}")
    }

    /// GETs `path` from the metrics endpoint; returns (status, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        use std::io::Write;
        let mut stream =
            std::net::TcpStream::connect(self.metrics_address()).expect("connect metrics");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: agent\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// The value of a Prometheus series (`name{labels}` exactly as rendered, or a bare name).
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.http_get("/metrics");
        body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The agent's resident set size in KiB (`VmRSS` in `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the agent's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("a VmRSS line")
    }

    /// Sends a signal to the agent.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the agent to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "agent did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the agent binary with `args` to completion (for start-up errors); returns status and stderr.
pub fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let mut command = Command::new(agent_binary());
    if !args.contains(&"--socket") {
        command.arg("--socket").arg(&socket);
    }
    command.args(args).stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("run agent");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Standard base64 with padding, as the proxies encode frame payloads.
pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}
