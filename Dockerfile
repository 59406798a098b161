# syntax=docker/dockerfile:1
# ccs-endpoint: multi-stage build; the runtime image holds one static-ish binary (glibc only),
# runs as a non-root user and reads its configuration, certificates and key store from mounts:
#
#   docker build -t ccs-endpoint .
#   docker run --rm -p 8443:8443 \
#     -v "$PWD/config:/etc/ccs-endpoint/config:ro" \
#     -v "$PWD/certs:/etc/ccs-endpoint/certs:ro" \
#     ccs-endpoint
#
# The key store must be readable by uid 65532 and by nobody else but its owner (see docs/operations.md, "Deploying").
# Liveness: GET https://<pod>:8443/healthz; readiness: GET http://<pod>:9090/readyz (no HEALTHCHECK:
# the image has no shell or client to run one, and orchestrators probe over HTTP).
# With [keys] backend = "pkcs11", the HSM vendor's PKCS#11 library (and its client configuration)
# must be in the image: build FROM this one and COPY them in, or mount them; see docs/hsm.md.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so that a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && for b in wrap request_path hsm attack fleet; do echo 'fn main() {}' > benches/$b.rs; done \
    && cargo build --release --locked && rm -rf src benches
# The commit `ccs_build_info` reports: docker build --build-arg CCS_ENDPOINT_COMMIT=$(git rev-parse --short HEAD)
ARG CCS_ENDPOINT_COMMIT=unknown
COPY src ./src
COPY benches ./benches
# `init` embeds the example configuration and certs/README.md.
COPY config ./config
COPY certs/README.md ./certs/README.md
RUN touch src/main.rs src/lib.rs && cargo build --release --locked \
    && strip target/release/ccs-endpoint

# distroless/cc: glibc and CA data, no shell, no package manager; "nonroot" is uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/ccs-endpoint /usr/local/bin/ccs-endpoint
ENV CCS_ENDPOINT_CONFIG=/etc/ccs-endpoint/config/ccs-endpoint.toml
# The admin listener (/healthz /readyz /metrics) where a configuration leaves [admin] listen
# unset: reachable through the container's network for probes and Prometheus.
ENV CCS_ENDPOINT_ADMIN_LISTEN=0.0.0.0:9090
USER 65532:65532
# 8443: the service (TLS). 9090: the admin listener, when [admin] listen = "0.0.0.0:9090"
# (inside a container 127.0.0.1 is unreachable to probes); never publish it to the internet.
# 9443: the signed admin API, when [api] listen = "0.0.0.0:9443"; publish it only to the
# network its signers use.
EXPOSE 8443 9090 9443
ENTRYPOINT ["/usr/local/bin/ccs-endpoint"]
CMD ["serve"]
