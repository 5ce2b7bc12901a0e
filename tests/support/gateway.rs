//! A real Gateway API implementation on the test bed: Traefik, built from its Go module by
//! `e2e/cluster/build`, routing by the HTTPRoutes of one namespace to the pods the node agent
//! answers for, and a load generator that sends requests through it.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    sync::atomic::{AtomicU16, Ordering},
    time::{Duration, Instant},
};

use http_body_util::{BodyExt, Empty, Full};
use hyper::{body::Bytes, client::conn::http2};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use kube::{
    Api,
    api::{DynamicObject, PostParams},
};
use serde_json::json;

use super::testbed::{Testbed, eventually};

/// Traefik's controller name, which a GatewayClass names to be served by it.
const CONTROLLER: &str = "traefik.io/gateway-controller";

/// A running Traefik serving the Gateway `public` of one namespace; stopped, and its
/// GatewayClass deleted, on drop.
pub struct Gateway {
    child: Child,
    /// Where the Gateway's listener accepts requests.
    pub addr: SocketAddr,
    class: String,
    admin: PathBuf,
    /// Traefik's log.
    pub log: PathBuf,
}

use cutover::rollout::route::gateway_api_resource as kind;

/// The directory `e2e/cluster/build` built the control plane and Traefik into.
fn binaries() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("e2e/cluster/build"))
        .stdin(Stdio::null())
        .output()
        .expect("e2e/cluster/build runs");
    assert!(
        out.status.success(),
        "e2e/cluster/build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// An address no other process of the run listens on: 127.0.0.0/8 is all loopback, so each
/// process takes its own address from its pid (pids fit in 22 bits) and each gateway of the
/// process its own port. Nothing is picked, released and handed on.
fn own_address() -> SocketAddr {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let pid = std::process::id();
    let ip = Ipv4Addr::new(
        127,
        64 + ((pid >> 16) & 0x3f) as u8,
        (pid >> 8) as u8,
        pid as u8,
    );
    SocketAddr::from((ip, 18000 + NEXT.fetch_add(1, Ordering::SeqCst)))
}

impl Gateway {
    /// Creates a GatewayClass for this test and the Gateway `public` in `ns`, starts
    /// Traefik for them, and returns once the Gateway is programmed.
    pub async fn start(bed: &Testbed, ns: &str) -> Gateway {
        let client = bed.admin().await;
        let addr = own_address();
        let class = format!("traefik-{ns}");
        let classes: Api<DynamicObject> =
            Api::all_with(client.clone(), &kind("GatewayClass", "gatewayclasses"));
        let gc: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": class, "labels": {"cutover.dev/test": ns}},
            "spec": {"controllerName": CONTROLLER}}))
        .expect("a GatewayClass");
        classes
            .create(&PostParams::default(), &gc)
            .await
            .expect("GatewayClass created");
        let gateways: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &kind("Gateway", "gateways"));
        let gw: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "public"},
            "spec": {"gatewayClassName": class,
                "listeners": [{"name": "web", "port": addr.port(), "protocol": "HTTP"}]}}))
        .expect("a Gateway");
        gateways
            .create(&PostParams::default(), &gw)
            .await
            .expect("Gateway created");

        let log = bed.dir.join(format!("traefik-{ns}.log"));
        let file = std::fs::File::create(&log).expect("traefik log");
        let child = Command::new(binaries().join("traefik"))
            .arg(format!("--entryPoints.web.address={addr}"))
            .arg("--providers.kubernetesgateway=true")
            .arg(format!("--providers.kubernetesgateway.namespaces={ns}"))
            .arg(format!(
                "--providers.kubernetesgateway.labelselector=cutover.dev/test={ns}"
            ))
            .arg("--log.level=INFO")
            .arg("--log.noColor=true")
            .env("KUBECONFIG", bed.admin_kubeconfig())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("traefik starts");
        let gateway = Gateway {
            child,
            addr,
            class,
            admin: bed.admin_kubeconfig(),
            log,
        };
        eventually(
            "the Gateway programmed by Traefik",
            Duration::from_secs(120),
            async || {
                let gw = gateways.get("public").await.ok()?;
                let conditions = gw.data["status"]["conditions"].as_array()?.clone();
                conditions
                    .iter()
                    .any(|c| c["type"] == "Programmed" && c["status"] == "True")
                    .then_some(())
            },
        )
        .await;
        gateway
    }

    /// The last lines of Traefik's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// A load generator sending through this gateway.
    pub fn load(&self) -> Load {
        Load {
            client: Client::builder(TokioExecutor::new()).build_http(),
            channel: Arc::default(),
            addr: self.addr,
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.admin)
            .args(["delete", "gatewayclass", &self.class, "--wait=false"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The revision of the pod that answered, from the responder's `X-Revision` header.
fn revision_of(headers: &hyper::HeaderMap) -> String {
    headers
        .get("x-revision")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// How the load generator talks to the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1 GETs.
    Http,
    /// gRPC calls over HTTP/2 without TLS.
    Grpc,
}

/// One answered request: when it was sent, which revision answered and its status.
#[derive(Clone, Debug)]
pub struct Answer {
    /// When the request was sent.
    pub sent: Instant,
    /// The `cutover.dev/revision` of the pod that answered ("" for none: no pod reached).
    pub revision: String,
    /// The HTTP status.
    pub status: u16,
}

/// Requests sent through the gateway, one at a time over kept-alive connections.
#[derive(Clone)]
pub struct Load {
    client: Client<HttpConnector, Empty<Bytes>>,
    channel: Arc<tokio::sync::Mutex<Option<http2::SendRequest<Full<Bytes>>>>>,
    addr: SocketAddr,
}

impl Load {
    /// Sends one GET with `headers` and reads the answer.
    pub async fn one(&self, headers: &[(&str, &str)]) -> Answer {
        let sent = Instant::now();
        let mut request = hyper::Request::get(format!("http://{}/", self.addr));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request.body(Empty::new()).expect("a request");
        match self.client.request(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                let revision = revision_of(response.headers());
                let _ = response.into_body().collect().await;
                Answer {
                    sent,
                    revision,
                    status,
                }
            }
            Err(_) => Answer {
                sent,
                revision: String::new(),
                status: 0,
            },
        }
    }

    /// Makes one gRPC call (`/shop.Cart/Add`, an empty message) over HTTP/2 without TLS,
    /// as a gRPC client does; `status` is 200 for gRPC status OK and 500 for any other.
    pub async fn grpc_one(&self, headers: &[(&str, &str)]) -> Answer {
        let sent = Instant::now();
        let failed = Answer {
            sent,
            revision: String::new(),
            status: 0,
        };
        // One HTTP/2 connection, as a gRPC channel keeps; made again when it breaks.
        let mut channel = self.channel.lock().await;
        if channel.as_ref().is_none_or(|c| c.is_closed()) {
            let Ok(stream) = tokio::net::TcpStream::connect(self.addr).await else {
                return failed;
            };
            // A call is a HEADERS and a DATA frame: without this, the second waits for the
            // first's delayed ACK.
            let _ = stream.set_nodelay(true);
            let Ok((sender, conn)) = hyper::client::conn::http2::handshake(
                TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(stream),
            )
            .await
            else {
                return failed;
            };
            tokio::spawn(conn);
            *channel = Some(sender);
        }
        let Some(mut sender) = channel.clone() else {
            return failed;
        };
        drop(channel);
        let mut request = hyper::Request::post(format!("http://{}/shop.Cart/Add", self.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request
            .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
            .expect("a request");
        let Ok(response) = sender.send_request(request).await else {
            return failed;
        };
        let revision = revision_of(response.headers());
        let ok = match response.into_body().collect().await {
            Ok(body) => body
                .trailers()
                .and_then(|t| t.get("grpc-status"))
                .is_some_and(|s| s == "0"),
            Err(_) => false,
        };
        Answer {
            sent,
            revision,
            status: if ok { 200 } else { 500 },
        }
    }

    /// Sends `n` requests with `headers` and counts the answers by revision.
    pub async fn tally(&self, n: usize, headers: &[(&str, &str)]) -> Tally {
        self.tally_as(Proto::Http, n, headers).await
    }

    /// Sends `n` requests (or gRPC calls) with `headers` and counts the answers by revision.
    pub async fn tally_as(&self, proto: Proto, n: usize, headers: &[(&str, &str)]) -> Tally {
        let mut tally = Tally::default();
        for _ in 0..n {
            let answer = match proto {
                Proto::Http => self.one(headers).await,
                Proto::Grpc => self.grpc_one(headers).await,
            };
            tally.add(&answer);
        }
        tally
    }
}

/// Answers counted by the revision that gave them.
#[derive(Debug, Default)]
pub struct Tally {
    /// Answers per revision ("" for requests no pod answered).
    pub by_revision: BTreeMap<String, usize>,
    /// Answers with a status other than 200.
    pub failed: usize,
    /// All answers.
    pub total: usize,
}

impl Tally {
    /// Counts one answer.
    pub fn add(&mut self, a: &Answer) {
        *self.by_revision.entry(a.revision.clone()).or_default() += 1;
        if a.status != 200 {
            self.failed += 1;
        }
        self.total += 1;
    }

    /// The share of answers, in percent, that `revision` gave.
    pub fn percent(&self, revision: &str) -> f64 {
        let n = self.by_revision.get(revision).copied().unwrap_or(0);
        100.0 * n as f64 / self.total.max(1) as f64
    }
}
