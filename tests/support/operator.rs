//! `cutover run --leader-elect` as a child process whose metrics address is read back from
//! its JSON log (it binds port 0 itself); shared by the tests and the bench binary.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use serde_json::Value;

/// A running operator; killed on drop.
pub struct Operator {
    pub child: Child,
    pub metrics: SocketAddr,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `binary run --leader-elect` against `kubeconfig` as `identity` (its pod name),
/// competing for the Lease in `default`.
pub fn start(binary: &Path, kubeconfig: &Path, identity: &str) -> Result<Operator, String> {
    let mut child = Command::new(binary)
        .args(["run", "--leader-elect", "--leader-election-namespace"])
        .args(["default", "--log-format", "json", "--metrics-addr"])
        .arg("127.0.0.1:0")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("POD_NAME", identity)
        .env_remove("POD_NAMESPACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", binary.display()))?;
    let Some(stderr) = child.stderr.take() else {
        return Err("no stderr".into());
    };
    let (tx, rx) = mpsc::channel();
    // Reads the log to its end so the operator never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if event["message"] == "serving /metrics, /healthz, /readyz"
                && let Some(addr) = event["addr"].as_str().and_then(|a| a.parse().ok())
            {
                let _ = tx.send(addr);
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(metrics) => Ok(Operator { child, metrics }),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err("the operator never said where it serves metrics".into())
        }
    }
}

/// The operator's /metrics text (empty while it does not answer).
pub fn metrics(addr: SocketAddr) -> String {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Whether the operator at `addr` says it leads.
pub fn leads(addr: SocketAddr) -> bool {
    metrics(addr).lines().any(|l| l == "cutover_leader 1")
}
