//! The web provider: one HTTP request to a JSON API per measurement, the value picked by a
//! JSONPath. Status pages, synthetic checks and in-house health APIs measure this way.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use super::{condition::QueryResult, prometheus::error_chain, resolve};
use crate::api::WebMethod;

/// Largest answer read; a bigger one is an error rather than memory spent.
pub const MAX_WEB_RESPONSE_BYTES: usize = 1024 * 1024;
/// Longest string value handed to a condition.
pub const MAX_TEXT_CHARS: usize = 4096;

type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// A rendered request, ready to send.
#[derive(Clone, PartialEq, Eq)]
pub struct WebRequest {
    /// Method.
    pub method: WebMethod,
    /// URL.
    pub url: String,
    /// Headers (values may hold secrets: never shown).
    pub headers: Vec<(String, String)>,
    /// Body of a POST.
    pub body: Option<String>,
    /// JSONPath of the value.
    pub json_path: String,
    /// Timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for WebRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers.len())
            .finish_non_exhaustive()
    }
}

/// HTTP(S) client of web metrics, trusting the system's roots; one pool for all.
pub struct WebClient {
    client: Option<Client>,
}

impl Default for WebClient {
    fn default() -> Self {
        Self::new()
    }
}

impl WebClient {
    /// A client with no connections yet.
    pub fn new() -> Self {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .ok()
            .map(|builder| {
                let mut roots = rustls::RootCertStore::empty();
                // A certificate that fails to load is skipped, not fatal.
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
                let config = builder.with_root_certificates(roots).with_no_client_auth();
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(config)
                    .https_or_http()
                    .enable_http1()
                    .build();
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build(connector)
            });
        WebClient { client }
    }

    /// Sends `request` and picks its value. Errors name the URL and the status, never a
    /// header.
    pub async fn measure(&self, request: &WebRequest) -> Result<QueryResult, String> {
        let client = self
            .client
            .clone()
            .ok_or_else(|| "TLS setup failed: no usable protocol versions".to_string())?;
        let uri: http::Uri = request
            .url
            .parse()
            .map_err(|e| format!("invalid URL {:?}: {e}", request.url))?;
        let mut builder = match request.method {
            WebMethod::Get => http::Request::get(uri),
            WebMethod::Post => http::Request::post(uri),
        }
        .header(http::header::ACCEPT, "application/json");
        if request.body.is_some() {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in &request.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let body = Bytes::from(request.body.clone().unwrap_or_default());
        let http_request = builder
            .body(Full::new(body))
            .map_err(|_| "a header name or value is not valid HTTP".to_string())?;
        let url = &request.url;
        let exchange = async {
            let response = client
                .request(http_request)
                .await
                .map_err(|e| format!("{url} unreachable: {}", error_chain(&e)))?;
            let status = response.status().as_u16();
            let bytes = http_body_util::Limited::new(response.into_body(), MAX_WEB_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| format!("{url}: reading the answer: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(request.timeout, exchange)
            .await
            .map_err(|_| format!("{url} did not answer within {:?}", request.timeout))??;
        interpret(url, status, &bytes, &request.json_path)
    }
}

/// What an answer means: a 2xx JSON document's value at `json_path`.
pub fn interpret(
    url: &str,
    status: u16,
    body: &[u8],
    json_path: &str,
) -> Result<QueryResult, String> {
    if !(200..300).contains(&status) {
        return Err(format!("{url} answered {status}: {}", excerpt(body)));
    }
    let document: Value = serde_json::from_slice(body)
        .map_err(|e| format!("{url} answered with no JSON document: {e}"))?;
    let value = resolve::json_path(&document, json_path)?;
    to_result(value).map_err(|e| format!("JSONPath {json_path:?} {e}"))
}

/// A JSON value as a condition sees it.
fn to_result(value: &Value) -> Result<QueryResult, String> {
    match value {
        Value::Null => Ok(QueryResult::Empty),
        Value::Bool(b) => Ok(QueryResult::Bool(*b)),
        Value::Number(n) => n
            .as_f64()
            .map(QueryResult::Number)
            .ok_or_else(|| "selects a number out of range".to_string()),
        Value::String(s) => {
            if s.chars().count() > MAX_TEXT_CHARS {
                return Err(format!(
                    "selects a string longer than {MAX_TEXT_CHARS} characters"
                ));
            }
            Ok(QueryResult::Text(s.clone()))
        }
        Value::Array(items) => {
            let numbers: Option<Vec<f64>> = items.iter().map(Value::as_f64).collect();
            match numbers {
                Some(ns) if ns.is_empty() => Ok(QueryResult::Empty),
                Some(ns) => Ok(QueryResult::Numbers(ns)),
                None => Err("selects a list that is not all numbers; select one value".into()),
            }
        }
        Value::Object(_) => Err("selects an object; select one value in it".into()),
    }
}

/// At most 200 printable characters of a body, on one line.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let flat: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if flat.chars().count() > 200 {
        format!("{}…", flat.chars().take(200).collect::<String>())
    } else {
        flat
    }
}

#[cfg(test)]
#[path = "web_tests.rs"]
mod tests;
