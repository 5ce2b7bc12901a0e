//! The Prometheus provider: instant and range queries over Prometheus's HTTP API, with the
//! response parsed into what conditions and the judge see.
//!
//! The transport is a trait so the operator can talk to a real Prometheus over HTTP(S) and
//! the tests and `cutover simulate` to the sim's scripted one in-process.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use jiff::Timestamp;
use serde_json::Value;

use super::condition::QueryResult;

/// Largest response body read; a bigger one is an error rather than memory spent.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// Why a query gave no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The request could not be sent or no answer came.
    #[error("Prometheus unreachable: {0}")]
    Unreachable(String),
    /// No answer within the timeout.
    #[error("Prometheus did not answer within {0:?}")]
    Timeout(Duration),
    /// Prometheus answered with an error.
    #[error("Prometheus answered {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Prometheus's `error` field, or the body.
        message: String,
    },
    /// The answer could not be read.
    #[error("unreadable Prometheus response: {0}")]
    Malformed(String),
    /// The connection settings are unusable (bad URL, bad CA bundle, missing Secret key).
    #[error("{0}")]
    Config(String),
}

/// Credentials sent with each request. `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `Authorization: Bearer ...`.
    Bearer(String),
    /// `Authorization: Basic ...`.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Self::Basic { .. } => f.write_str("Basic(<redacted>)"),
        }
    }
}

/// A resolved Prometheus endpoint: address, credentials and trust, read from the metric,
/// its Secrets and the operator's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Base URL, e.g. `http://prometheus.monitoring:9090`.
    pub base: String,
    /// Credentials, if any.
    pub credentials: Option<Credentials>,
    /// PEM CA bundle trusted instead of the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// TLS server name to verify instead of the URL's host.
    pub server_name: Option<String>,
    /// Request timeout.
    pub timeout: Duration,
}

impl Endpoint {
    /// An endpoint with no credentials and the default timeout.
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            credentials: None,
            ca_pem: None,
            server_name: None,
            timeout: crate::api::DEFAULT_QUERY_TIMEOUT.as_std(),
        }
    }
}

/// One HTTP GET to a Prometheus API path (`/api/v1/...`) with its query parameters.
pub trait Transport: Send + Sync {
    /// Sends the request; returns the HTTP status and body.
    fn get(
        &self,
        endpoint: &Endpoint,
        path: &str,
        params: &[(String, String)],
    ) -> BoxFuture<'static, Result<(u16, Bytes), ProviderError>>;
}

/// A query to run.
#[derive(Clone, Debug, PartialEq)]
pub enum Query {
    /// `/api/v1/query` at a time.
    Instant {
        /// PromQL.
        query: String,
        /// Evaluation time.
        time: Timestamp,
    },
    /// `/api/v1/query_range` over a window.
    Range {
        /// PromQL.
        query: String,
        /// Window start.
        start: Timestamp,
        /// Window end.
        end: Timestamp,
        /// Resolution.
        step: Duration,
    },
}

impl Query {
    fn path_and_params(&self) -> (&'static str, Vec<(String, String)>) {
        let time = |t: &Timestamp| format!("{:.3}", t.as_millisecond() as f64 / 1000.0);
        match self {
            Self::Instant { query, time: at } => (
                "/api/v1/query",
                vec![("query".into(), query.clone()), ("time".into(), time(at))],
            ),
            Self::Range {
                query,
                start,
                end,
                step,
            } => (
                "/api/v1/query_range",
                vec![
                    ("query".into(), query.clone()),
                    ("start".into(), time(start)),
                    ("end".into(), time(end)),
                    ("step".into(), format!("{}s", step.as_secs().max(1))),
                ],
            ),
        }
    }
}

/// Runs an instant query and reduces it to a [`QueryResult`].
pub async fn instant(
    transport: &dyn Transport,
    endpoint: &Endpoint,
    query: &str,
    time: Timestamp,
) -> Result<QueryResult, ProviderError> {
    let q = Query::Instant {
        query: query.to_string(),
        time,
    };
    let (path, params) = q.path_and_params();
    let (status, body) = send(transport, endpoint, path, &params).await?;
    parse_instant(status, &body)
}

/// Runs a range query and returns the values of its one series (NaN kept; the judge drops them).
pub async fn range(
    transport: &dyn Transport,
    endpoint: &Endpoint,
    query: &str,
    start: Timestamp,
    end: Timestamp,
    step: Duration,
) -> Result<Vec<f64>, ProviderError> {
    let q = Query::Range {
        query: query.to_string(),
        start,
        end,
        step,
    };
    let (path, params) = q.path_and_params();
    let (status, body) = send(transport, endpoint, path, &params).await?;
    parse_range(status, &body)
}

async fn send(
    transport: &dyn Transport,
    endpoint: &Endpoint,
    path: &str,
    params: &[(String, String)],
) -> Result<(u16, Bytes), ProviderError> {
    match tokio::time::timeout(endpoint.timeout, transport.get(endpoint, path, params)).await {
        Ok(answer) => answer,
        Err(_) => Err(ProviderError::Timeout(endpoint.timeout)),
    }
}

/// Most characters of a reply copied into a message (and so into status).
pub const EXCERPT_CHARS: usize = 160;

/// A short, single-line excerpt of what a server answered: control characters become
/// spaces, runs of whitespace one space, and it is cut to [`EXCERPT_CHARS`]. Replies end up
/// in status, where the Rollout's author reads them: whatever the server sent, it stays
/// short and printable.
pub fn excerpt(reply: &str) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    for c in reply.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if space || out.is_empty() {
                continue;
            }
            space = true;
        } else {
            space = false;
        }
        if count == EXCERPT_CHARS {
            return format!("{}…", out.trim_end());
        }
        out.push(c);
        count += 1;
    }
    out.trim_end().to_string()
}

fn envelope(status: u16, body: &[u8]) -> Result<Value, ProviderError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        if (200..300).contains(&status) {
            ProviderError::Malformed(excerpt(&e.to_string()))
        } else {
            // At most a few KiB are decoded: the excerpt keeps less than that.
            let head = &body[..body.len().min(4 * EXCERPT_CHARS)];
            ProviderError::Api {
                status,
                message: excerpt(&String::from_utf8_lossy(head)),
            }
        }
    })?;
    if value.get("status").and_then(Value::as_str) != Some("success") {
        let message = excerpt(
            value
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no error message"),
        );
        return Err(ProviderError::Api { status, message });
    }
    value
        .get("data")
        .cloned()
        .ok_or_else(|| ProviderError::Malformed("no data field".into()))
}

fn sample_value(pair: &Value) -> Result<f64, ProviderError> {
    let text = pair
        .get(1)
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderError::Malformed("a sample is not [time, \"value\"]".into()))?;
    // Prometheus writes NaN and infinities as strings Rust parses too.
    text.parse::<f64>()
        .map_err(|_| ProviderError::Malformed(format!("sample value {text:?} is not a number")))
}

/// Parses an instant query's answer: a vector with one sample or a scalar is a number,
/// several samples a list, none empty.
pub fn parse_instant(status: u16, body: &[u8]) -> Result<QueryResult, ProviderError> {
    let data = envelope(status, body)?;
    let kind = data.get("resultType").and_then(Value::as_str);
    let result = data.get("result");
    match kind {
        Some("scalar") => Ok(QueryResult::Number(sample_value(
            result.unwrap_or(&Value::Null),
        )?)),
        Some("vector") => {
            let samples = result
                .and_then(Value::as_array)
                .ok_or_else(|| ProviderError::Malformed("vector result is not a list".into()))?;
            let values = samples
                .iter()
                .map(|s| sample_value(s.get("value").unwrap_or(&Value::Null)))
                .collect::<Result<Vec<f64>, _>>()?;
            Ok(match values.as_slice() {
                [] => QueryResult::Empty,
                [one] => QueryResult::Number(*one),
                _ => QueryResult::Numbers(values),
            })
        }
        Some("matrix") => Err(ProviderError::Malformed(
            "an instant query returned a range vector; remove the [range] selector".into(),
        )),
        other => Err(ProviderError::Malformed(format!(
            "unsupported result type {other:?}"
        ))),
    }
}

/// Parses a range query's answer: the values of its one series; none is an empty list and
/// several series are an error (the judge compares one series per side).
pub fn parse_range(status: u16, body: &[u8]) -> Result<Vec<f64>, ProviderError> {
    let data = envelope(status, body)?;
    if data.get("resultType").and_then(Value::as_str) != Some("matrix") {
        return Err(ProviderError::Malformed(
            "a range query did not return a matrix".into(),
        ));
    }
    let series = data
        .get("result")
        .and_then(Value::as_array)
        .ok_or_else(|| ProviderError::Malformed("matrix result is not a list".into()))?;
    match series.as_slice() {
        [] => Ok(Vec::new()),
        [one] => one
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().map(sample_value).collect())
            .unwrap_or_else(|| Ok(Vec::new())),
        many => Err(ProviderError::Malformed(format!(
            "the range query returned {} series; aggregate it to one (e.g. with sum())",
            many.len()
        ))),
    }
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// What distinguishes two connection pools: the CA bundle and the server name.
type TrustKey = (Option<Vec<u8>>, Option<String>);

/// HTTP(S) transport: one connection pool per distinct trust setting.
#[derive(Default)]
pub struct HttpTransport {
    clients: Mutex<HashMap<TrustKey, HttpClient>>,
}

impl HttpTransport {
    /// A transport with no connections yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn client(&self, endpoint: &Endpoint) -> Result<HttpClient, ProviderError> {
        let key = (endpoint.ca_pem.clone(), endpoint.server_name.clone());
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let client = build_client(endpoint)?;
        clients.insert(key, client.clone());
        Ok(client)
    }
}

fn build_client(endpoint: &Endpoint) -> Result<HttpClient, ProviderError> {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ProviderError::Config(format!("TLS setup failed: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    match &endpoint.ca_pem {
        Some(pem) => {
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| {
                    ProviderError::Config(format!("the CA bundle is not valid PEM: {e}"))
                })?;
                roots.add(cert).map_err(|e| {
                    ProviderError::Config(format!(
                        "the CA bundle holds an unusable certificate: {e}"
                    ))
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(ProviderError::Config(
                    "the CA bundle holds no certificate".into(),
                ));
            }
        }
        None => {
            // The system's roots; a certificate that fails to load is skipped, not fatal.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let config = builder.with_root_certificates(roots).with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http();
    let connector = match &endpoint.server_name {
        Some(name) => {
            let name = rustls_pki_types::ServerName::try_from(name.clone()).map_err(|e| {
                ProviderError::Config(format!("tls.serverName {name:?} is invalid: {e}"))
            })?;
            connector
                .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
                .enable_http1()
                .build()
        }
        None => connector.enable_http1().build(),
    };
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector),
    )
}

/// `base` joined with an API path and query string.
pub fn url(base: &str, path: &str, params: &[(String, String)]) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish();
    format!("{}{path}?{query}", base.trim_end_matches('/'))
}

fn authorization(credentials: &Credentials) -> String {
    use base64::Engine;
    match credentials {
        Credentials::Bearer(token) => format!("Bearer {}", token.trim()),
        Credentials::Basic { username, password } => format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
        ),
    }
}

impl Transport for HttpTransport {
    fn get(
        &self,
        endpoint: &Endpoint,
        path: &str,
        params: &[(String, String)],
    ) -> BoxFuture<'static, Result<(u16, Bytes), ProviderError>> {
        let client = self.client(endpoint);
        let target = url(&endpoint.base, path, params);
        let auth = endpoint.credentials.as_ref().map(authorization);
        Box::pin(async move {
            let client = client?;
            let uri: http::Uri = target
                .parse()
                .map_err(|e| ProviderError::Config(format!("invalid Prometheus address: {e}")))?;
            let mut request =
                http::Request::get(uri).header(http::header::ACCEPT, "application/json");
            if let Some(auth) = auth {
                request = request.header(http::header::AUTHORIZATION, auth);
            }
            let request = request
                .body(Full::new(Bytes::new()))
                .map_err(|e| ProviderError::Config(e.to_string()))?;
            let response = client
                .request(request)
                .await
                .map_err(|e| ProviderError::Unreachable(error_chain(&e)))?;
            let status = response.status().as_u16();
            let body = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| ProviderError::Unreachable(e.to_string()))?
                .to_bytes();
            Ok((status, body))
        })
    }
}

/// The error and its sources on one line ("connection refused" lives in a source).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_cut_to_a_short_printable_excerpt() {
        assert_eq!(excerpt("bad query"), "bad query");
        assert_eq!(
            excerpt("  line one\n\tline\u{7}two\r\n "),
            "line one line two"
        );
        let long = excerpt(&"x".repeat(10_000));
        assert_eq!(long.chars().count(), EXCERPT_CHARS + 1);
        assert!(long.ends_with('…'));
        // An HTML error page from a proxy becomes one short line.
        let page = format!(
            "<html>\n<body>\n{}</body></html>",
            "<p>secret internals</p>\n".repeat(100)
        );
        let cut = envelope(502, page.as_bytes()).unwrap_err().to_string();
        assert!(!cut.contains('\n'), "{cut}");
        assert!(cut.chars().count() < EXCERPT_CHARS + 40, "{cut}");
        let huge_error = format!(r#"{{"status":"error","error":"{}"}}"#, "e".repeat(5000));
        let cut = envelope(400, huge_error.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(cut.chars().count() < EXCERPT_CHARS + 40, "{cut}");
    }

    #[test]
    fn vectors_scalars_and_empty_results() {
        let one = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.25"]}]}}"#;
        assert_eq!(parse_instant(200, one), Ok(QueryResult::Number(0.25)));
        let two = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]}}"#;
        assert_eq!(
            parse_instant(200, two),
            Ok(QueryResult::Numbers(vec![1.0, 2.0]))
        );
        let none = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse_instant(200, none), Ok(QueryResult::Empty));
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"3"]}}"#;
        assert_eq!(parse_instant(200, scalar), Ok(QueryResult::Number(3.0)));
        let nan = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#;
        assert!(parse_instant(200, nan).unwrap().is_no_data());
    }

    #[test]
    fn errors_carry_prometheus_message() {
        let bad = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        assert_eq!(
            parse_instant(400, bad),
            Err(ProviderError::Api {
                status: 400,
                message: "parse error at char 5".into()
            })
        );
        assert!(matches!(
            parse_instant(502, b"<html>bad gateway</html>"),
            Err(ProviderError::Api { status: 502, .. })
        ));
        assert!(matches!(
            parse_instant(200, b"not json"),
            Err(ProviderError::Malformed(_))
        ));
    }

    #[test]
    fn ranges_give_one_series() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"NaN"],[3,"2.5"]]}]}}"#;
        let values = parse_range(200, body).unwrap();
        assert_eq!(values.len(), 3);
        assert!(values[1].is_nan());
        let empty = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert_eq!(parse_range(200, empty), Ok(vec![]));
        let two = br#"{"status":"success","data":{"resultType":"matrix","result":[{"values":[]},{"values":[]}]}}"#;
        assert!(
            parse_range(200, two)
                .unwrap_err()
                .to_string()
                .contains("2 series")
        );
    }

    #[test]
    fn urls_encode_queries_and_credentials_stay_hidden() {
        let u = url(
            "http://prom:9090/",
            "/api/v1/query",
            &[("query".into(), "sum(rate(x{a=\"b\"}[1m]))".into())],
        );
        assert_eq!(
            u,
            "http://prom:9090/api/v1/query?query=sum%28rate%28x%7Ba%3D%22b%22%7D%5B1m%5D%29%29"
        );
        let secret = Credentials::Bearer("s3cr3t".into());
        assert!(!format!("{secret:?}").contains("s3cr3t"));
        assert_eq!(authorization(&secret), "Bearer s3cr3t");
        let basic = Credentials::Basic {
            username: "u".into(),
            password: "p".into(),
        };
        assert_eq!(authorization(&basic), "Basic dTpw");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_an_error_not_a_result() {
        // A port held by a socket that never listens: connecting is refused for as long
        // as the socket is open, and nothing else can take the port meanwhile.
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        let endpoint = Endpoint::new(format!("http://{addr}"));
        let err = instant(&HttpTransport::new(), &endpoint, "up", Timestamp::now())
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::Unreachable(_)), "{err}");
    }

    #[test]
    fn a_bad_ca_bundle_is_a_config_error() {
        let mut endpoint = Endpoint::new("https://prom:9090");
        endpoint.ca_pem = Some(b"not a certificate".to_vec());
        assert!(matches!(
            build_client(&endpoint),
            Err(ProviderError::Config(_))
        ));
    }
}
