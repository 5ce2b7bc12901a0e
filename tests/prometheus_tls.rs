//! The Prometheus provider over HTTPS: a CA read from a Secret, a server name to verify, and
//! a bearer token from a Secret — against a TLS server with a certificate made for the test.

use std::sync::Arc;

use bytes::Bytes;
use cutover::{
    analysis::{
        condition::QueryResult,
        fetch::{Fetcher, Input, Subject},
        prometheus::HttpTransport,
    },
    api::Metric,
    controller::Clock,
    controller::egress::Allowlist,
    sim::Sim,
};
use http_body_util::Full;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, api::PostParams};
use serde_json::json;

const TOKEN: &str = "planted-token-7f3a";

struct Pki {
    ca_pem: String,
    server_cert: rustls_pki_types::CertificateDer<'static>,
    server_key: rustls_pki_types::PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["prometheus.test".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server_cert: server.der().clone(),
        server_key: rustls_pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
    }
}

/// A TLS server answering every query with 0.02 when the bearer token is right, 401 if not.
async fn serve(pki: &Pki) -> std::net::SocketAddr {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![pki.server_cert.clone()], pki.server_key.clone_key())
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(|req: hyper::Request<_>| async move {
                    let authorized = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        == Some(&format!("Bearer {TOKEN}"));
                    let (status, body) = if authorized {
                        (
                            200,
                            json!({"status": "success", "data": {"resultType": "vector",
                            "result": [{"metric": {}, "value": [1800000000, "0.02"]}]}}),
                        )
                    } else {
                        (
                            401,
                            json!({"status": "error", "errorType": "unauthorized", "error": "bad token"}),
                        )
                    };
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::from(body.to_string())))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

fn metric(addr: std::net::SocketAddr, tls: serde_json::Value) -> Metric {
    serde_json::from_value(json!({"name": "m", "successCondition": "result < 0.05",
        "prometheus": {"query": "up", "address": format!("https://{addr}"),
            "auth": {"bearerToken": {"name": "prom", "key": "token"}}, "tls": tls}}))
    .unwrap()
}

async fn fetch(sim: &Sim, metric: &Metric) -> Input {
    fetch_allowing(sim, metric, &["127.0.0.1"]).await
}

async fn fetch_allowing(sim: &Sim, metric: &Metric, allowed: &[&str]) -> Input {
    let client = sim.client();
    let transport = HttpTransport::new();
    let egress = Allowlist::new(allowed.iter().copied(), None);
    let web = cutover::analysis::web::WebClient::new();
    let fetcher = Fetcher {
        client: &client,
        transport: &transport,
        default_url: None,
        namespace: "default",
        egress: &egress,
        web: &web,
    };
    fetcher
        .fetch(metric, &[], &Subject::default(), jiff::Timestamp::now())
        .await
}

async fn secret(sim: &Sim, data: serde_json::Value) {
    let secrets: Api<Secret> = Api::namespaced(sim.client(), "default");
    let secret =
        serde_json::from_value(json!({"metadata": {"name": "prom"}, "stringData": data})).unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

#[tokio::test]
async fn https_with_a_ca_and_token_from_a_secret() {
    let pki = pki();
    let addr = serve(&pki).await;
    let sim = Sim::new(Clock::System);
    secret(&sim, json!({"token": TOKEN, "ca.crt": pki.ca_pem})).await;
    let tls =
        json!({"caSecret": {"name": "prom", "key": "ca.crt"}, "serverName": "prometheus.test"});
    assert_eq!(
        fetch(&sim, &metric(addr, tls)).await,
        Input::Query(Ok(QueryResult::Number(0.02)))
    );
}

#[tokio::test]
async fn an_untrusted_certificate_or_a_wrong_token_is_an_error() {
    let pki = pki();
    let addr = serve(&pki).await;
    let sim = Sim::new(Clock::System);
    secret(&sim, json!({"token": "wrong", "ca.crt": pki.ca_pem})).await;
    // The system roots do not know the test CA.
    let Input::Query(Err(untrusted)) = fetch(
        &sim,
        &metric(addr, json!({"serverName": "prometheus.test"})),
    )
    .await
    else {
        panic!("an unknown CA must not be trusted");
    };
    assert!(untrusted.contains("unreachable"), "{untrusted}");
    let tls =
        json!({"caSecret": {"name": "prom", "key": "ca.crt"}, "serverName": "prometheus.test"});
    let Input::Query(Err(denied)) = fetch(&sim, &metric(addr, tls)).await else {
        panic!("a wrong token must fail");
    };
    assert!(
        denied.contains("401") && denied.contains("bad token"),
        "{denied}"
    );
    assert!(
        !denied.contains("wrong"),
        "the token is never in a message: {denied}"
    );
}

#[tokio::test]
async fn a_host_off_the_allowlist_gets_no_request_and_no_credentials() {
    let pki = pki();
    let addr = serve(&pki).await;
    let sim = Sim::new(Clock::System);
    // No Secret: a refused host must fail before credentials are looked up.
    let tls =
        json!({"caSecret": {"name": "prom", "key": "ca.crt"}, "serverName": "prometheus.test"});
    let Input::Query(Err(refused)) =
        fetch_allowing(&sim, &metric(addr, tls), &["prometheus.monitoring.svc"]).await
    else {
        panic!("a host off the allowlist must be refused");
    };
    assert!(
        refused.contains("\"127.0.0.1\"") && refused.contains("--allowed-hosts"),
        "{refused}"
    );
    assert!(!refused.contains("Secret"), "no Secret was read: {refused}");
}

#[tokio::test]
async fn an_address_from_a_secret_off_the_allowlist_is_refused_without_repeating_it() {
    let sim = Sim::new(Clock::System);
    secret(
        &sim,
        json!({"address": "http://internal-billing.corp:9090", "token": TOKEN}),
    )
    .await;
    let metric: Metric =
        serde_json::from_value(json!({"name": "m", "successCondition": "result < 0.05",
        "prometheus": {"query": "up", "addressFrom": {"name": "prom", "key": "address"}}}))
        .unwrap();
    let Input::Query(Err(refused)) =
        fetch_allowing(&sim, &metric, &["prometheus.monitoring.svc"]).await
    else {
        panic!("a host off the allowlist must be refused");
    };
    assert!(
        refused.contains("Secret \"prom\" key \"address\"") && refused.contains("--allowed-hosts"),
        "{refused}"
    );
    assert!(
        !refused.contains("billing"),
        "the address stays in its Secret: {refused}"
    );
}
