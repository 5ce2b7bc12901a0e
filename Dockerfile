# The operator image: built with the Rust toolchain, run as a non-root user on a minimal
# base that holds only the binary (and CA certificates for HTTPS to Prometheus).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin cutover \
 && install -D -m 0755 target/release/cutover /out/usr/local/bin/cutover

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/usr/local/bin/cutover /usr/local/bin/cutover
# 65532 is distroless's nonroot user; the chart's securityContext runs as the same.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/cutover"]
CMD ["run"]
