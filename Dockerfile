# syntax=docker/dockerfile:1
# gatehouse container image: `docker build -t gatehouse .` (BuildKit, the default since Docker 23).
#
# Runtime: gcr.io/distroless/cc-debian12:nonroot. The binary links only glibc and libgcc_s:
# OpenSSL is compiled in (openssl-sys's vendored openssl-src build, see Cargo.lock), so the cc
# image (glibc, libgcc, ca-certificates, tzdata, user nonroot = 65532, no shell, no package
# manager) has everything it needs. testing/k8s/validate.sh checks that with `ldd` on every run;
# if a dynamically linked library is ever added, switch the runtime to debian:bookworm-slim with
# that package and `USER 65532`. No shell means no `sh -c` in the pod spec: the Deployment's
# preStop uses the kubelet's `sleep` action.

FROM rust:1.95-bookworm AS build
# cmake, pkg-config and the OpenSSL headers for Pingora's and openssl-sys's build scripts; perl
# and make (already in the image) build the vendored OpenSSL.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gatehouse \
 && install -m 0755 target/release/gatehouse /gatehouse

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /gatehouse /usr/local/bin/gatehouse
# The vendored OpenSSL's compiled-in default CA path is not Debian's: point it at the image's
# bundle (upstream TLS verification, discovery and JWKS over https).
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_DIR=/etc/ssl/certs
USER 65532:65532
EXPOSE 8080 8443 9100
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["run", "--config", "/etc/gatehouse/gatehouse.yaml"]
