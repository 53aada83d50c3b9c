# Multi-stage build: the agent needs no protoc (only the conformance tests' upstream crates do).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sentinel-ws-agent --bin sentinel-ws-agent

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home agent \
    && mkdir -p /run/sentinel \
    && chown agent:agent /run/sentinel
COPY --from=build /src/target/release/sentinel-ws-agent /usr/local/bin/sentinel-ws-agent
USER agent
# Share this directory with the proxy's container; configure the agent through the env vars in README.md.
VOLUME ["/run/sentinel"]
ENV AGENT_SOCKET=/run/sentinel/sentinel-ws.sock
ENTRYPOINT ["/usr/local/bin/sentinel-ws-agent"]
