//! The sim: an in-memory Kubernetes API server good enough that the unchanged operator and
//! a real `kubectl` work against it — served in-process to a `kube::Client` for tests, or
//! over HTTP on 127.0.0.1 for `cutover dev`.
//!
//! Every known difference from a real API server is listed in `src/sim/README.md`.

pub mod discovery;
pub mod error;
mod events;
pub mod faults;
mod kinds;
pub mod merge;
mod printers;
pub mod prometheus;
mod protobuf;
pub mod resources;
mod schemas;
pub mod selector;
pub mod server;
pub mod store;
pub mod views;
pub mod watch;
pub mod workload;

use std::{convert::Infallible, net::SocketAddr, path::Path, sync::Arc, task::Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use tokio_util::sync::CancellationToken;

pub use store::Store;

use crate::controller::Clock;

/// An embedded API server.
#[derive(Clone)]
pub struct Sim {
    store: Arc<Store>,
    prometheus: Arc<prometheus::ScriptedPrometheus>,
}

impl Sim {
    /// A sim whose timestamps come from `clock`.
    pub fn new(clock: Clock) -> Self {
        Self::from_store(Store::new(clock))
    }

    fn from_store(store: Arc<Store>) -> Self {
        let prometheus = Arc::new(prometheus::ScriptedPrometheus::new(
            store.clone(),
            Default::default(),
        ));
        Self { store, prometheus }
    }

    /// The scripted Prometheus, served under `/prometheus`.
    pub fn prometheus(&self) -> &Arc<prometheus::ScriptedPrometheus> {
        &self.prometheus
    }

    /// A sim that keeps only `history_limit` watch events (to exercise `410 Gone`).
    pub fn with_history_limit(clock: Clock, history_limit: usize) -> Self {
        Self::from_store(Store::with_history_limit(clock, history_limit))
    }

    /// The object store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Starts the workload simulator (Deployments, Jobs, EndpointSlices) until `shutdown`.
    pub fn start_workloads(
        &self,
        config: workload::WorkloadConfig,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(workload::run(self.store.clone(), config, shutdown))
    }

    /// A tower Service answering API requests in-process.
    pub fn service(&self) -> SimService {
        SimService {
            store: self.store.clone(),
            prometheus: self.prometheus.clone(),
        }
    }

    /// An analysis transport answered by this sim's scripted Prometheus in-process.
    pub fn prometheus_transport(&self) -> Arc<dyn crate::analysis::prometheus::Transport> {
        Arc::new(InProcessPrometheus(self.prometheus.clone()))
    }

    /// A `kube::Client` talking to this sim in-process (default namespace `default`).
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.service(), "default")
    }

    /// Serves the API over HTTP on `addr` until `shutdown`; returns the bound address.
    pub async fn serve(
        &self,
        addr: SocketAddr,
        shutdown: CancellationToken,
    ) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let store = self.store.clone();
        let prometheus = self.prometheus.clone();
        let task = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = shutdown.cancelled() => break,
                };
                let Ok((stream, _)) = accepted else { continue };
                // Watch events are small writes; Nagle's algorithm would hold them back.
                let _ = stream.set_nodelay(true);
                let store = store.clone();
                let prometheus = prometheus.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let store = store.clone();
                            let prometheus = prometheus.clone();
                            async move {
                                let (parts, body) = req.into_parts();
                                let bytes = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                Ok::<_, Infallible>(
                                    server::handle(
                                        store,
                                        prometheus,
                                        hyper::Request::from_parts(parts, bytes),
                                    )
                                    .await,
                                )
                            }
                        },
                    );
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    tokio::select! {
                        _ = conn => {},
                        _ = shutdown.cancelled() => {},
                    }
                });
            }
        });
        Ok((bound, task))
    }
}

/// The sim's scripted Prometheus as an analysis transport, answered in-process.
struct InProcessPrometheus(Arc<prometheus::ScriptedPrometheus>);

impl crate::analysis::prometheus::Transport for InProcessPrometheus {
    fn get(
        &self,
        _endpoint: &crate::analysis::prometheus::Endpoint,
        path: &str,
        params: &[(String, String)],
    ) -> BoxFuture<'static, Result<(u16, Bytes), crate::analysis::prometheus::ProviderError>> {
        let endpoint = path.trim_start_matches("/api/v1/");
        let (status, value) = self.0.answer(endpoint, params);
        let body = Bytes::from(value.to_string());
        Box::pin(async move { Ok((status, body)) })
    }
}

/// Writes a kubeconfig pointing at `addr` (context `cutover-dev`, namespace `default`).
pub fn write_kubeconfig(path: &Path, addr: SocketAddr) -> std::io::Result<()> {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: cutover-dev\n  cluster:\n    server: http://{addr}\n\
         contexts:\n- name: cutover-dev\n  context:\n    cluster: cutover-dev\n    user: cutover-dev\n    namespace: default\n\
         current-context: cutover-dev\nusers:\n- name: cutover-dev\n  user:\n    token: cutover-dev\n"
    );
    std::fs::write(path, text)
}

/// The in-process transport of the sim.
#[derive(Clone)]
pub struct SimService {
    store: Arc<Store>,
    prometheus: Arc<prometheus::ScriptedPrometheus>,
}

impl tower::Service<::http::Request<kube::client::Body>> for SimService {
    type Response = ::http::Response<server::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ::http::Request<kube::client::Body>) -> Self::Future {
        let store = self.store.clone();
        let prometheus = self.prometheus.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let bytes: Bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok(server::handle(store, prometheus, ::http::Request::from_parts(parts, bytes)).await)
        })
    }
}
