//! The test bed: a real kube-apiserver, etcd and kube-controller-manager with fake nodes
//! (`e2e/cluster/`), cutover's CRDs and chart installed, shared by every test process of a
//! run. `scripts/test` starts it and names it in `CUTOVER_TESTBED`; a test run on its own
//! starts it in `target/testbed` (building the control plane on first use) and leaves it
//! running for the next run (`e2e/testbed down target/testbed` stops it).
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, Config,
    api::PostParams,
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::json;

/// One shared test bed.
pub struct Testbed {
    /// Directory holding its state, logs and kubeconfigs.
    pub dir: PathBuf,
}

static SHARED: OnceLock<Testbed> = OnceLock::new();

/// The test bed of this run, started if no process of the run has started it yet.
pub fn shared() -> &'static Testbed {
    SHARED.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::var_os("CUTOVER_TESTBED")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/testbed"));
        // `up` is idempotent and serialised by a lock in DIR: it reuses a running test bed.
        let out = Command::new(root.join("e2e/testbed"))
            .arg("up")
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .expect("e2e/testbed runs");
        assert!(
            out.status.success(),
            "the test bed did not start:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Testbed { dir }
    })
}

impl Testbed {
    /// Kubeconfig of the cluster admin.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }

    /// Kubeconfig holding the chart ServiceAccount's token: the operator's identity.
    pub fn operator_kubeconfig(&self) -> PathBuf {
        self.dir.join("operator.kubeconfig")
    }

    /// A client acting as the cluster admin.
    pub async fn admin(&self) -> Client {
        client_from(&self.admin_kubeconfig()).await
    }

    /// A client acting as the operator (the chart's ServiceAccount).
    pub async fn operator_client(&self) -> Client {
        client_from(&self.operator_kubeconfig()).await
    }

    /// Creates a namespace with a unique name starting with `prefix`.
    pub async fn namespace(&self, prefix: &str) -> TestNamespace {
        let client = self.admin().await;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!("{prefix}-{:06x}", (nanos ^ std::process::id()) & 0xff_ffff);
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name}})).expect("a namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace created");
        TestNamespace {
            name,
            admin: self.admin_kubeconfig(),
        }
    }

    /// Starts `cutover run` as the chart's ServiceAccount, watching `namespace` only.
    pub fn operator(&self, namespace: &str, extra: &[&str]) -> Operator {
        let log = self.dir.join(format!("operator-{namespace}.log"));
        let file = std::fs::File::create(&log).expect("operator log");
        let child = Command::new(env!("CARGO_BIN_EXE_cutover"))
            .args(["run", "--namespace", namespace, "--log-format", "json"])
            .arg("--kubeconfig")
            .arg(self.operator_kubeconfig())
            .args(["--metrics-addr", "127.0.0.1:0"])
            .args(extra)
            .env_remove("KUBECONFIG")
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("cutover run starts");
        Operator { child, log }
    }
}

async fn client_from(path: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("a kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a client config");
    Client::try_from(config).expect("a client")
}

/// A namespace deleted (without waiting) when dropped.
pub struct TestNamespace {
    /// Its name.
    pub name: String,
    admin: PathBuf,
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // kubectl, not the test's client: the client's connection runs on the test's
        // runtime, which is blocked in this drop. Best effort: the test bed is thrown away
        // at the end of the run anyway.
        let _ = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.admin)
            .args(["delete", "namespace", &self.name, "--wait=false"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A `cutover run` process, killed when dropped.
pub struct Operator {
    child: Child,
    /// Where its log goes.
    pub log: PathBuf,
}

impl Operator {
    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Where it serves /metrics and /healthz, once its log says so.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        let text = std::fs::read_to_string(&self.log).ok()?;
        text.lines()
            .filter(|l| l.contains("serving /metrics"))
            .find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                v.pointer("/fields/addr")
                    .or_else(|| v.get("addr"))?
                    .as_str()?
                    .parse()
                    .ok()
            })
    }

    /// Sends SIGKILL and waits for the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Testbed {
    /// Runs the real `kubectl` as the cluster admin; fails the test if it fails, and
    /// returns what it printed.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.admin_kubeconfig())
            .args(args)
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Creates the object `value` describes through `api`; fails the test if it cannot.
pub async fn create<K>(api: &Api<K>, value: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(value).expect("an object");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("created");
}

/// Names of the Deployments in `ns`.
pub async fn deployment_names(client: &Client, ns: &str) -> Vec<String> {
    Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .expect("deployments")
        .items
        .into_iter()
        .filter_map(|d| d.metadata.name)
        .collect()
}

/// Polls `check` every 200 ms until it returns Some, failing with `what` after `limit`.
pub async fn eventually<T>(
    what: &str,
    limit: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sets the image of container `app` of Rollout `name` (a merge patch, as `kubectl patch`).
pub async fn set_image(api: &Api<cutover::api::Rollout>, name: &str, image: &str) {
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .expect("image changed");
}
