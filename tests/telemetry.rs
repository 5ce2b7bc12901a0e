//! The operator's HTTP endpoints as Prometheus and the kubelet's probes see them.

use std::sync::Arc;

use cutover::{
    controller::Metrics,
    telemetry::{Health, serve},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split(' ').nth(1).unwrap().parse().unwrap();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

#[tokio::test]
async fn health_readiness_and_metrics_endpoints() {
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let shutdown = CancellationToken::new();
    let (addr, server) = serve(
        "127.0.0.1:0".parse().unwrap(),
        metrics.clone(),
        health.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();

    assert_eq!(get(addr, "/healthz").await.0, 200);
    assert_eq!(
        get(addr, "/readyz").await.0,
        503,
        "not ready before the controllers start"
    );
    health.set_ready(true);
    assert_eq!(get(addr, "/readyz").await.0, 200);

    metrics.observe("rollout", 0.01, None);
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#"cutover_reconciles_total{controller="rollout",result="success"} 1"#),
        "{body}"
    );
    assert!(body.contains("cutover_reconcile_duration_seconds_bucket"));

    shutdown.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "server stops on shutdown"
    );
}
