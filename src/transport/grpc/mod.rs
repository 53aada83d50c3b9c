//! The gRPC transport (`--grpc-address`): one tonic server with `sentinel.agent.v1.AgentProcessor`
//! and `AgentServiceV2` under both `sentinel.agent.v2` and `zentinel.agent.v2`, generated from our
//! own files in `proto/`. It stops accepting connections when draining starts.

pub mod proto;
pub mod v1;
pub mod v2;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use super::TransportContext;

/// Serves gRPC on `listener` until draining starts (open streams keep being served by tonic's
/// graceful shutdown until they end or the process exits).
pub async fn serve(
    listener: TcpListener,
    context: TransportContext,
) -> Result<(), tonic::transport::Error> {
    let lifecycle = std::sync::Arc::clone(&context.lifecycle);
    tonic::transport::Server::builder()
        .add_service(
            proto::sentinel_v1::agent_processor_server::AgentProcessorServer::new(
                v1::V1Service::new(context.agent.clone()),
            ),
        )
        .add_service(v2::sentinel::Service::new(context.clone()).server())
        .add_service(v2::zentinel::Service::new(context).server())
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            lifecycle.accepting_stopped().await;
        })
        .await
}
