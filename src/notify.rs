//! Webhook notifications: a Rollout's decisions sent to the endpoints it names, as generic
//! JSON or Slack-compatible payloads. Sending happens on a background task with retries and
//! backoff, so a slow or dead endpoint never holds up a reconcile; URLs come from Secrets and
//! are never logged.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::api::{NotificationEvent, WebhookFormat};

/// Attempts per notification (the first and its retries).
pub const ATTEMPTS: u32 = 5;
/// Delay before the first retry; it doubles after each.
pub const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Notifications waiting to be sent before new ones are dropped.
pub const QUEUE: usize = 1024;
/// Time allowed for one attempt.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The event a decision (an Event reason of the Rollout controller) is announced as.
pub fn event_of(reason: &str) -> Option<NotificationEvent> {
    Some(match reason {
        "Started" => NotificationEvent::Started,
        "StepCompleted" => NotificationEvent::StepCompleted,
        "Paused" => NotificationEvent::Paused,
        "Promoted" => NotificationEvent::Promoted,
        "Aborted" => NotificationEvent::Aborted,
        "MigrationFailed" => NotificationEvent::MigrationFailed,
        "BakeFailed" => NotificationEvent::BakeFailed,
        "VerifyFailed" => NotificationEvent::VerifyFailed,
        _ => return None,
    })
}

/// What happened, to whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The event.
    pub event: NotificationEvent,
    /// Rollout namespace.
    pub namespace: String,
    /// Rollout name.
    pub rollout: String,
    /// Revision being rolled out.
    pub revision: Option<String>,
    /// What the controller said.
    pub text: String,
    /// Names this decision alone: the same for every retry of its delivery, different for
    /// any other decision, so a receiver can drop a repeat.
    pub key: String,
    /// The release this decision is part of, from the deployment log.
    pub release: Option<crate::api::Release>,
}

/// The idempotency key of a decision: the Rollout's uid and generation, the step it was
/// at, the decision, and the resourceVersion of the status write that recorded it (which
/// tells apart the same decision made again later, e.g. after a retry).
pub fn idempotency_key(
    uid: &str,
    generation: i64,
    step: Option<i32>,
    event: NotificationEvent,
    recorded_at: &str,
) -> String {
    let step = step.map_or_else(|| "-".to_string(), |s| s.to_string());
    format!("{uid}/{generation}/{step}/{event:?}/{recorded_at}")
}

/// Placeholders a webhook's `template` may use.
pub const TEMPLATE_FIELDS: &[&str] = &[
    "event",
    "namespace",
    "rollout",
    "revision",
    "message",
    "images",
    "startedBy",
    "result",
    "duration",
];

/// The placeholders of `template` that are not known, for validation.
pub fn unknown_placeholders(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push(after.chars().take(32).collect());
            break;
        };
        let name = after[..end].trim();
        if !TEMPLATE_FIELDS.contains(&name) {
            out.push(name.to_string());
        }
        rest = &after[end + 2..];
    }
    out
}

/// `template` with the message's fields filled in (an unknown placeholder stays as
/// written; validation refuses it first).
pub fn render(template: &str, m: &Message, now: jiff::Timestamp) -> String {
    let release = m.release.as_ref();
    let value = |name: &str| -> Option<String> {
        Some(match name {
            "event" => format!("{:?}", m.event),
            "namespace" => m.namespace.clone(),
            "rollout" => m.rollout.clone(),
            "revision" => m.revision.clone().unwrap_or_default(),
            "message" => m.text.clone(),
            "images" => release.map(|r| r.images.join(", ")).unwrap_or_default(),
            "startedBy" => release
                .and_then(|r| r.started_by.clone())
                .unwrap_or_default(),
            "result" => release
                .map(|r| format!("{:?}", r.result))
                .unwrap_or_default(),
            "duration" => release.map(|r| took(r, now)).unwrap_or_default(),
            _ => return None,
        })
    };
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                match value(name) {
                    Some(v) => out.push_str(&v),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// How long a release took, or has taken so far.
fn took(r: &crate::api::Release, now: jiff::Timestamp) -> String {
    let end = r.ended_at.as_ref().map_or(now, |t| t.0);
    let secs = end.duration_since(r.started_at.0).as_secs().max(0) as u64;
    crate::api::Duration::from_secs(secs).to_string()
}

/// The default text of a release's last word: how long it took, and what a person does
/// next after an abort.
pub fn ending(m: &Message, now: jiff::Timestamp) -> String {
    let Some(release) = &m.release else {
        return m.text.clone();
    };
    match m.event {
        NotificationEvent::Promoted => format!("{}; released in {}", m.text, took(release, now)),
        NotificationEvent::Aborted | NotificationEvent::BakeFailed => format!(
            "{}; after {}; next: fix the cause, then `kubectl cutover retry {}` or set the template back",
            m.text,
            took(release, now),
            m.rollout
        ),
        _ => m.text.clone(),
    }
}

/// The payload of a message in a format.
pub fn payload(format: WebhookFormat, m: &Message) -> Value {
    match format {
        WebhookFormat::Generic => json!({
            "event": format!("{:?}", m.event),
            "namespace": m.namespace,
            "rollout": m.rollout,
            "revision": m.revision,
            "message": m.text,
            "idempotencyKey": m.key,
            "release": m.release,
        }),
        WebhookFormat::Slack => {
            let by = m
                .release
                .as_ref()
                .and_then(|r| r.started_by.as_deref())
                .map(|b| format!(" (changed by {b})"))
                .unwrap_or_default();
            json!({
                "text": format!(
                    "*cutover* rollout `{}/{}`: *{:?}* — {}{by}",
                    m.namespace, m.rollout, m.event, m.text
                ),
            })
        }
    }
}

/// One notification to deliver.
#[derive(Clone)]
pub struct Delivery {
    /// Webhook name (for logs; the URL never is).
    pub webhook: String,
    /// Where to, read from a Secret.
    pub url: String,
    /// The JSON body.
    pub body: Value,
    /// Rollout, as `namespace/name`, for logs.
    pub rollout: String,
    /// Sent as the `Idempotency-Key` header of every attempt.
    pub key: String,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("webhook", &self.webhook)
            .field("url", &"<redacted>")
            .field("rollout", &self.rollout)
            .field("key", &self.key)
            .finish()
    }
}

/// Hands notifications to the sender task.
#[derive(Clone, Debug)]
pub struct Notifier {
    queue: mpsc::Sender<Delivery>,
}

impl Notifier {
    /// Starts the sender task (on the current runtime) and returns its handle.
    pub fn start() -> Self {
        let (queue, mut receiver) = mpsc::channel::<Delivery>(QUEUE);
        tokio::spawn(async move {
            let client = client();
            while let Some(d) = receiver.recv().await {
                let client = client.clone();
                // Each delivery retries on its own; one slow endpoint does not delay others.
                tokio::spawn(async move { deliver(&client, d).await });
            }
        });
        Self { queue }
    }

    /// Queues a delivery without waiting; a full queue drops it with a warning.
    pub fn send(&self, delivery: Delivery) {
        if let Err(error) = self.queue.try_send(delivery) {
            let d = match &error {
                mpsc::error::TrySendError::Full(d) | mpsc::error::TrySendError::Closed(d) => d,
            };
            tracing::warn!(webhook = %d.webhook, rollout = %d.rollout, "notification dropped: the queue is full");
        }
    }
}

type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

fn client() -> Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions();
    let connector = match builder {
        Ok(b) => hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(b.with_root_certificates(roots).with_no_client_auth())
            .https_or_http()
            .enable_http1()
            .build(),
        Err(_) => hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
            .https_or_http()
            .enable_http1()
            .build(),
    };
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector)
}

async fn deliver(client: &Client, d: Delivery) {
    let body = d.body.to_string();
    let mut wait = FIRST_RETRY;
    for attempt in 1..=ATTEMPTS {
        let outcome = attempt_once(client, &d.url, &d.key, &body).await;
        match outcome {
            Ok(()) => {
                tracing::debug!(webhook = %d.webhook, rollout = %d.rollout, attempt, "notification delivered");
                return;
            }
            Err(why) if attempt < ATTEMPTS => {
                tracing::debug!(webhook = %d.webhook, rollout = %d.rollout, attempt, %why, "notification failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(why) => {
                tracing::warn!(webhook = %d.webhook, rollout = %d.rollout, attempts = ATTEMPTS, %why, "notification not delivered");
            }
        }
    }
}

/// One POST; the error says what went wrong without the URL.
async fn attempt_once(client: &Client, url: &str, key: &str, body: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| "the webhook URL is not a valid URL".to_string())?;
    let request = http::Request::post(uri)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", key)
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|_| "the request could not be built".to_string())?;
    let response = tokio::time::timeout(TIMEOUT, client.request(request))
        .await
        .map_err(|_| format!("no answer within {TIMEOUT:?}"))?
        // hyper's connection errors name the kind of failure, not the address.
        .map_err(|e| {
            let mut kinds = vec![e.to_string()];
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                kinds.push(s.to_string());
                source = s.source();
            }
            kinds.join(": ")
        })?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", status.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message {
            event: NotificationEvent::Aborted,
            namespace: "shop".into(),
            rollout: "web".into(),
            revision: Some("abc".into()),
            text: "analysis failed".into(),
            key: "u1/2/3/Aborted/41".into(),
            release: None,
        }
    }

    #[test]
    fn payloads_in_both_formats() {
        assert_eq!(
            payload(WebhookFormat::Generic, &message()),
            json!({"event": "Aborted", "namespace": "shop", "rollout": "web", "revision": "abc", "message": "analysis failed", "idempotencyKey": "u1/2/3/Aborted/41", "release": null})
        );
        assert_eq!(
            payload(WebhookFormat::Slack, &message())["text"],
            "*cutover* rollout `shop/web`: *Aborted* — analysis failed"
        );
    }

    fn released() -> Message {
        let mut m = message();
        m.release = Some(
            serde_json::from_value(json!({"revision": "abc", "images": ["web:2"],
                "startedAt": "2030-01-01T00:00:00Z", "endedAt": "2030-01-01T00:04:00Z",
                "result": "Aborted", "reason": "analysis failed", "startedBy": "argocd-controller"}))
            .expect("a release"),
        );
        m
    }

    #[test]
    fn a_template_fills_the_release_in_and_names_what_it_does_not_know() {
        let now = "2030-01-01T01:00:00Z".parse().expect("a time");
        let t = "{{event}}: {{ rollout }}@{{ revision }} ({{ images }}) by {{ startedBy }}: {{ result }} after {{ duration }} — {{ message }} {{ nope }}";
        assert_eq!(
            render(t, &released(), now),
            "Aborted: web@abc (web:2) by argocd-controller: Aborted after 4m — analysis failed {{ nope }}"
        );
        assert_eq!(unknown_placeholders(t), vec!["nope".to_string()]);
        assert_eq!(
            unknown_placeholders("{{ event }} {{ oops"),
            vec![" oops".to_string()]
        );
        assert!(unknown_placeholders("plain").is_empty());
    }

    #[test]
    fn a_release_ends_saying_how_long_it_took_and_what_next() {
        let now = "2030-01-01T01:00:00Z".parse().expect("a time");
        assert_eq!(
            ending(&released(), now),
            "analysis failed; after 4m; next: fix the cause, then `kubectl cutover retry web` or set the template back"
        );
        let mut promoted = released();
        promoted.event = NotificationEvent::Promoted;
        promoted.text = "revision abc is now stable".into();
        assert_eq!(
            ending(&promoted, now),
            "revision abc is now stable; released in 4m"
        );
        assert_eq!(
            ending(&message(), now),
            "analysis failed",
            "no release, no ending"
        );
    }

    #[test]
    fn payloads_carry_the_release_from_the_deployment_log() {
        let m = released();
        let body = payload(WebhookFormat::Generic, &m);
        assert_eq!(body["release"]["startedBy"], "argocd-controller");
        assert_eq!(body["release"]["images"], json!(["web:2"]));
        assert_eq!(body["release"]["result"], "Aborted");
        assert_eq!(
            payload(WebhookFormat::Slack, &m)["text"],
            "*cutover* rollout `shop/web`: *Aborted* — analysis failed (changed by argocd-controller)"
        );
    }

    #[test]
    fn decisions_map_to_events_and_others_are_not_sent() {
        assert_eq!(event_of("Promoted"), Some(NotificationEvent::Promoted));
        assert_eq!(
            event_of("MigrationFailed"),
            Some(NotificationEvent::MigrationFailed)
        );
        assert_eq!(event_of("AnalysisStarted"), None);
    }

    #[test]
    fn keys_name_one_decision() {
        let key = |generation, step, event, rv| idempotency_key("u1", generation, step, event, rv);
        let aborted = key(2, Some(3), NotificationEvent::Aborted, "41");
        assert_eq!(aborted, "u1/2/3/Aborted/41");
        assert_eq!(aborted, key(2, Some(3), NotificationEvent::Aborted, "41"));
        for other in [
            key(3, Some(3), NotificationEvent::Aborted, "41"),
            key(2, Some(4), NotificationEvent::Aborted, "41"),
            key(2, None, NotificationEvent::Aborted, "41"),
            key(2, Some(3), NotificationEvent::Paused, "41"),
            key(2, Some(3), NotificationEvent::Aborted, "57"),
        ] {
            assert_ne!(aborted, other);
        }
    }

    #[test]
    fn a_delivery_never_shows_its_url() {
        let d = Delivery {
            webhook: "slack".into(),
            url: "https://hooks.example/T000/SECRET".into(),
            body: json!({}),
            rollout: "shop/web".into(),
            key: "u1/2/3/Aborted/41".into(),
        };
        assert!(!format!("{d:?}").contains("SECRET"));
    }
}
