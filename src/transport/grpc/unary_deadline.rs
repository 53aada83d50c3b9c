//! The bound on unary calls (`ProcessEvent` of v1 and of both v2 packages): a call whose HEADERS
//! arrive without its message holds an HTTP/2 stream, counted against `--max-grpc-streams`,
//! for as long as the peer keeps the connection. tonic reads a unary call's message before our
//! handler runs, so the bound is a layer around the services: a unary call not answered within
//! `--read-timeout` is ended with `DEADLINE_EXCEEDED` (deciding a frame takes milliseconds, so
//! only a call still waiting for its message reaches the bound). Streaming calls bound their
//! first message themselves and may then live as long as the proxy keeps them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::Status;
use tower::{Layer, Service};

use crate::lifecycle::Transport;
use crate::telemetry::Telemetry;

/// The method name of every unary call the services have.
const UNARY_METHOD: &str = "/ProcessEvent";

/// Wraps the gRPC services in [`UnaryDeadline`].
#[derive(Debug, Clone, Copy)]
pub struct UnaryDeadlineLayer {
    /// `--read-timeout`.
    pub limit: Duration,
}

impl<S> Layer<S> for UnaryDeadlineLayer {
    type Service = UnaryDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        UnaryDeadline {
            inner,
            limit: self.limit,
        }
    }
}

/// The services, with unary calls ended after [`UnaryDeadlineLayer::limit`].
#[derive(Debug, Clone)]
pub struct UnaryDeadline<S> {
    inner: S,
    limit: Duration,
}

impl<S, B> Service<http::Request<B>> for UnaryDeadline<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let unary = request.uri().path().ends_with(UNARY_METHOD);
        let limit = self.limit;
        let answer = self.inner.call(request);
        Box::pin(async move {
            if !unary {
                return answer.await;
            }
            match tokio::time::timeout(limit, answer).await {
                Ok(result) => result,
                Err(_) => {
                    Telemetry::get().record_read_timeout(Transport::Grpc);
                    Ok(
                        Status::deadline_exceeded("no complete message within --read-timeout")
                            .into_http(),
                    )
                }
            }
        })
    }
}
