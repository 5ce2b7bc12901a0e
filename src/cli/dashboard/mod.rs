//! `kubectl cutover dashboard`: a web page on loopback that shows Rollouts live and acts on
//! them. Every read and every action is made with the user's own kubeconfig, so Kubernetes
//! RBAC decides what the person sees and may do; the dashboard has no rights of its own.

pub mod guard;
pub mod stream;

use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    Json, Router,
    extract::{Path, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{
        Html, IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post},
};
use futures::StreamExt;
use serde_json::json;

use super::actions::{self, Action};
use super::plugin::PluginError;

/// Options of `kubectl cutover dashboard`.
#[derive(Clone, Debug, clap::Args)]
pub struct DashboardArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 3100)]
    pub port: u16,
    /// Address to listen on. Anything but loopback lets others on the network act with
    /// your credentials (they still need the URL's token).
    #[arg(long, default_value = "127.0.0.1")]
    pub address: IpAddr,
    /// Show Rollouts of every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Print the URL without opening a browser.
    #[arg(long)]
    pub no_open: bool,
}

/// The page, with its script and styles: no file is fetched from anywhere else.
const PAGE: &str = include_str!("page.html");

struct Shared {
    client: kube::Client,
    /// The namespace shown; `None` with `-A`.
    namespace: Option<String>,
    token: String,
    bound: SocketAddr,
}

/// Serves the dashboard until Ctrl-C.
pub async fn serve(
    client: kube::Client,
    namespace: String,
    args: DashboardArgs,
) -> Result<(), PluginError> {
    let token = guard::new_token().map_err(|e| PluginError::Serve(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind((args.address, args.port))
        .await
        .map_err(|e| {
            PluginError::Serve(format!(
                "cannot listen on {}:{}: {e}",
                args.address, args.port
            ))
        })?;
    let bound = listener
        .local_addr()
        .map_err(|e| PluginError::Serve(e.to_string()))?;
    if !args.address.is_loopback() {
        eprintln!(
            "warning: the dashboard listens on {bound}, not loopback: anyone who reaches it with the URL acts with your credentials"
        );
    }
    let shared = Arc::new(Shared {
        client,
        namespace: (!args.all_namespaces).then_some(namespace),
        token,
        bound,
    });
    let url = guard::url(bound, &shared.token);
    let scope = shared
        .namespace
        .as_deref()
        .map_or("all namespaces".to_string(), |ns| format!("namespace {ns}"));
    println!("cutover dashboard for {scope}: {url}");
    {
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    if !args.no_open {
        open_browser(&url);
    }
    let app = router(shared);
    tokio::select! {
        served = axum::serve(listener, app) => served.map_err(|e| PluginError::Serve(e.to_string())),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/stream", get(feed))
        .route("/api/rollouts/{namespace}/{name}/{action}", post(act))
        .route("/api/logs/{namespace}/{job}", get(job_log))
        .layer(middleware::from_fn_with_state(shared.clone(), check))
        .with_state(shared)
}

/// Every request: the token, then for anything but a read the page's own origin.
async fn check(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let token = guard::token_of(request.uri().query());
    if !guard::token_matches(token.as_deref(), &shared.token) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "this dashboard needs the URL it printed when it started, with its token",
        );
    }
    if request.method() != axum::http::Method::GET {
        let headers = request.headers();
        let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        if !guard::same_origin(
            text(header::ORIGIN),
            text(header::HOST),
            headers.contains_key(guard::ACTION_HEADER),
            shared.bound,
        ) {
            return refuse(
                StatusCode::FORBIDDEN,
                "refused: the request did not come from the dashboard's own page",
            );
        }
    }
    let mut response = next.run(request).await;
    for (name, value) in guard::COMMON_HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

fn refuse(status: StatusCode, why: &str) -> Response {
    let mut response = (status, Json(json!({"error": why}))).into_response();
    for (name, value) in guard::COMMON_HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn page(State(shared): State<Arc<Shared>>) -> Response {
    let nonce = match guard::new_token() {
        Ok(n) => n,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let scope = shared.namespace.clone().unwrap_or_default();
    let html = PAGE
        .replace("{{NONCE}}", &nonce)
        .replace("{{NAMESPACE}}", &script_string(&scope));
    let mut headers = HeaderMap::new();
    if let Ok(csp) = HeaderValue::from_str(&guard::content_security_policy(&nonce)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    (headers, Html(html)).into_response()
}

/// `s` as a JavaScript string literal that cannot end the script element it sits in.
fn script_string(s: &str) -> String {
    serde_json::to_string(s)
        .unwrap_or_else(|_| "\"\"".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

async fn feed(State(shared): State<Arc<Shared>>) -> Response {
    let changes = stream::changes(shared.client.clone(), shared.namespace.as_deref())
        .map(|m| Ok::<_, Infallible>(Event::default().data(m.to_string())));
    Sse::new(changes)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn act(
    State(shared): State<Arc<Shared>>,
    Path((namespace, name, action)): Path<(String, String, String)>,
) -> Response {
    let Some(action) = Action::parse(&action) else {
        return refuse(StatusCode::NOT_FOUND, &format!("no action {action:?}"));
    };
    if let Some(refused) = other_namespace(&shared, &namespace) {
        return refused;
    }
    // Made once, as the user: a refusal is shown, never retried under other rights.
    match actions::act(&shared.client, &namespace, &name, action).await {
        Ok(message) => {
            tracing::info!(%namespace, %name, action = action.as_str(), "dashboard action");
            (StatusCode::OK, Json(json!({"message": message}))).into_response()
        }
        Err(error) => failed(&error),
    }
}

/// The tail of a Job's log (its failed run, else its newest pod), read as the user.
async fn job_log(
    State(shared): State<Arc<Shared>>,
    Path((namespace, job)): Path<(String, String)>,
) -> Response {
    use k8s_openapi::api::core::v1::Pod;
    if let Some(refused) = other_namespace(&shared, &namespace) {
        return refused;
    }
    let pods: kube::Api<Pod> = kube::Api::namespaced(shared.client.clone(), &namespace);
    let selector = format!("batch.kubernetes.io/job-name={job}");
    let listed = pods
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .map_err(PluginError::Api);
    match listed {
        Ok(list) => {
            let log = crate::migration::reconcile::log_tail(&shared.client, &namespace, list.items)
                .await
                .unwrap_or_default();
            Json(json!({"log": log})).into_response()
        }
        Err(error) => failed(&error),
    }
}

/// A failed call to the API server, answered with its code and reason.
fn failed(error: &PluginError) -> Response {
    let (status, text) = failure(error);
    (
        status,
        Json(json!({"error": text, "code": status.as_u16()})),
    )
        .into_response()
}

/// A refusal when `namespace` is not the one this dashboard shows.
fn other_namespace(shared: &Shared, namespace: &str) -> Option<Response> {
    let shown = shared.namespace.as_deref()?;
    (shown != namespace).then(|| {
        refuse(
            StatusCode::FORBIDDEN,
            &format!("this dashboard shows namespace {shown}"),
        )
    })
}

/// The status and text a failed action is shown with: the API server's own code and
/// message (403 with RBAC's reason), 409 for a verb that does not apply.
pub fn failure(error: &PluginError) -> (StatusCode, String) {
    match error {
        PluginError::Api(kube::Error::Api(status)) => (
            StatusCode::from_u16(status.code).unwrap_or(StatusCode::BAD_GATEWAY),
            status.message.clone(),
        ),
        PluginError::NotFound { .. } => (StatusCode::NOT_FOUND, error.to_string()),
        PluginError::NotApplicable(m) => (StatusCode::CONFLICT, m.clone()),
        other => (
            StatusCode::BAD_GATEWAY,
            crate::controller::error::one_line(other),
        ),
    }
}

/// Opens `url` in the desktop's browser, where there is one; the URL is printed anyway.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        Some("open")
    } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
    {
        Some("xdg-open")
    } else {
        None
    };
    if let Some(opener) = opener {
        let spawned = std::process::Command::new(opener)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if spawned.is_err() {
            eprintln!("open the URL above in a browser");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_the_api_servers_code_and_reason() {
        let forbidden = PluginError::Api(kube::Error::Api(
            kube::core::Status::failure(
                "rollouts.cutover.dev \"web\" is forbidden: User \"dev\" cannot patch resource",
                "Forbidden",
            )
            .with_code(403)
            .boxed(),
        ));
        let (status, text) = failure(&forbidden);
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(text.contains("cannot patch"), "{text}");
        let (status, text) = failure(&PluginError::NotApplicable("nothing to promote".into()));
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(text, "nothing to promote");
    }

    #[test]
    fn the_page_is_self_contained() {
        assert!(
            PAGE.contains("nonce=\"{{NONCE}}\""),
            "its script runs by nonce"
        );
        for remote in ["https://", "http://", "//cdn", "src=\""] {
            let found = PAGE.match_indices(remote).count();
            assert_eq!(
                found, 0,
                "the page fetches nothing ({remote} appears {found} times)"
            );
        }
    }

    #[test]
    fn a_namespace_is_a_string_in_the_script_never_markup() {
        assert_eq!(script_string("shop"), r#""shop""#);
        let hostile = script_string(r#"</script><script>alert(1)</script>"&"#);
        assert!(!hostile.contains('<') && !hostile.contains('>') && !hostile.contains('&'));
        let back: String = serde_json::from_str(&hostile).unwrap();
        assert_eq!(
            back, r#"</script><script>alert(1)</script>"&"#,
            "the same string to the script"
        );
    }
}
