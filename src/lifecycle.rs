//! Signals, drain and shutdown, in the style of mini-redis: one [`Lifecycle`] broadcasts "stop
//! accepting" to every listener, counts the proxy connections still open, and lets `main` wait for
//! them to finish or for the drain deadline.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch, Notify};

/// Shared drain state.
#[derive(Debug)]
pub struct Lifecycle {
    draining: AtomicBool,
    stop_accepting: watch::Sender<bool>,
    open_connections: AtomicUsize,
    /// Open connections per transport, each limited on its own.
    open_by_transport: [AtomicUsize; 2],
    connection_closed: Notify,
}

pub use crate::model::Transport;

/// Held by every proxy connection task; dropping it marks the connection closed.
#[derive(Debug)]
pub struct ConnectionGuard {
    lifecycle: Arc<Lifecycle>,
    transport: Transport,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.lifecycle.open_by_transport[self.transport.index()].fetch_sub(1, Ordering::AcqRel);
        if self
            .lifecycle
            .open_connections
            .fetch_sub(1, Ordering::AcqRel)
            == 1
        {
            self.lifecycle.connection_closed.notify_waiters();
        }
        crate::telemetry::Telemetry::get().transport_connection_closed();
    }
}

/// How the drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainOutcome {
    /// Every proxy connection closed.
    Idle,
    /// The deadline passed with connections still open.
    TimedOut,
}

impl Lifecycle {
    /// A lifecycle in the serving state.
    pub fn new() -> Arc<Self> {
        let (stop_accepting, _) = watch::channel(false);
        Arc::new(Lifecycle {
            draining: AtomicBool::new(false),
            stop_accepting,
            open_connections: AtomicUsize::new(0),
            open_by_transport: [AtomicUsize::new(0), AtomicUsize::new(0)],
            connection_closed: Notify::new(),
        })
    }

    /// True once draining started.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Starts draining: listeners stop accepting; open connections keep being served.
    pub fn start_drain(&self) {
        self.draining.store(true, Ordering::Release);
        self.stop_accepting.send_replace(true);
    }

    /// A receiver that turns `true` when listeners must stop accepting.
    pub fn stop_accepting(&self) -> watch::Receiver<bool> {
        self.stop_accepting.subscribe()
    }

    /// Waits until listeners must stop accepting.
    pub async fn accepting_stopped(&self) {
        let mut receiver = self.stop_accepting();
        let _ = receiver.wait_for(|stop| *stop).await;
    }

    /// Registers an open Unix socket connection, whatever the limit.
    pub fn connection_opened(self: &Arc<Self>) -> ConnectionGuard {
        self.open_by_transport[Transport::UnixSocket.index()].fetch_add(1, Ordering::AcqRel);
        self.register(Transport::UnixSocket)
    }

    /// Registers an open connection on `transport` unless `limit` of them are open already (the
    /// check and the count are one atomic step, so a burst cannot overshoot the limit).
    pub fn try_open(
        self: &Arc<Self>,
        transport: Transport,
        limit: usize,
    ) -> Option<ConnectionGuard> {
        let counter = &self.open_by_transport[transport.index()];
        if counter.fetch_add(1, Ordering::AcqRel) >= limit {
            counter.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(self.register(transport))
    }

    fn register(self: &Arc<Self>, transport: Transport) -> ConnectionGuard {
        self.open_connections.fetch_add(1, Ordering::AcqRel);
        crate::telemetry::Telemetry::get().transport_connection_opened();
        ConnectionGuard {
            lifecycle: Arc::clone(self),
            transport,
        }
    }

    /// Connections open on `transport`.
    pub fn open_on(&self, transport: Transport) -> usize {
        self.open_by_transport[transport.index()].load(Ordering::Acquire)
    }

    /// Proxy connections currently open.
    pub fn open_connections(&self) -> usize {
        self.open_connections.load(Ordering::Acquire)
    }

    /// Waits until no proxy connection is open, or `deadline` passes.
    pub async fn wait_idle(&self, deadline: Duration) -> DrainOutcome {
        let wait = async {
            loop {
                let closed = self.connection_closed.notified();
                if self.open_connections() == 0 {
                    return;
                }
                closed.await;
            }
        };
        match tokio::time::timeout(deadline, wait).await {
            Ok(()) => DrainOutcome::Idle,
            Err(_) => DrainOutcome::TimedOut,
        }
    }
}

/// Broadcasts every termination signal (SIGTERM, SIGINT) the process gets, by name, to the
/// [`Shutdown`]s subscribed at that moment.
#[derive(Debug)]
pub struct Signals {
    notify: broadcast::Sender<&'static str>,
}

impl Signals {
    /// Starts listening for termination signals (on the current runtime).
    pub fn listen() -> Signals {
        let (notify, _) = broadcast::channel(4);
        let sender = notify.clone();
        tokio::spawn(async move {
            loop {
                // With nobody subscribed the signal is dropped; later subscribers hear later ones.
                let _ = sender.send(termination_signal().await);
            }
        });
        Signals { notify }
    }

    /// A [`Shutdown`] that hears the signals from now on (not those already sent).
    pub fn shutdown(&self) -> Shutdown {
        Shutdown::new(self.notify.subscribe())
    }
}

/// Listens for the shutdown notice, in the style of mini-redis's `Shutdown`: a broadcast
/// receiver and whether the notice came already (then [`Shutdown::recv`] returns at once).
#[derive(Debug)]
pub struct Shutdown {
    /// The signal that asked for the shutdown, once received.
    received: Option<&'static str>,
    notify: broadcast::Receiver<&'static str>,
}

impl Shutdown {
    /// A `Shutdown` over `notify`.
    pub fn new(notify: broadcast::Receiver<&'static str>) -> Shutdown {
        Shutdown {
            received: None,
            notify,
        }
    }

    /// True once the notice was received.
    pub fn is_shutdown(&self) -> bool {
        self.received.is_some()
    }

    /// Waits for the notice; returns the name of the signal that sent it.
    pub async fn recv(&mut self) -> &'static str {
        if let Some(signal) = self.received {
            return signal;
        }
        let signal = loop {
            match self.notify.recv().await {
                Ok(signal) => break signal,
                // Several signals at once: any of them is the notice.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                // The sender is gone (the runtime is stopping): nothing will ever come; treat it
                // as the notice so that nobody waits forever.
                Err(broadcast::error::RecvError::Closed) => break "shutdown",
            }
        };
        self.received = Some(signal);
        signal
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn termination_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return "SIGINT";
            }
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_shutdown_hears_only_notices_sent_after_it_subscribed_and_keeps_them() {
        let (notify, _) = broadcast::channel(4);
        let mut first = Shutdown::new(notify.subscribe());
        notify.send("SIGTERM").unwrap();
        let mut second = Shutdown::new(notify.subscribe());
        assert!(!first.is_shutdown());
        assert_eq!(first.recv().await, "SIGTERM");
        assert!(first.is_shutdown());
        assert_eq!(first.recv().await, "SIGTERM");
        notify.send("SIGINT").unwrap();
        assert_eq!(second.recv().await, "SIGINT");
    }

    #[tokio::test]
    async fn drain_waits_for_open_connections() {
        let lifecycle = Lifecycle::new();
        let guard = lifecycle.connection_opened();
        lifecycle.start_drain();
        assert!(lifecycle.is_draining());
        assert_eq!(
            lifecycle.wait_idle(Duration::from_millis(20)).await,
            DrainOutcome::TimedOut
        );
        let waiter = {
            let lifecycle = Arc::clone(&lifecycle);
            tokio::spawn(async move { lifecycle.wait_idle(Duration::from_secs(30)).await })
        };
        drop(guard);
        assert_eq!(waiter.await.unwrap(), DrainOutcome::Idle);
    }
}
