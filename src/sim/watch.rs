//! Watch streams: replayed and live events as JSON lines, bookmarks, timeouts, and one-row
//! Tables for `kubectl get -w`.

use std::{collections::VecDeque, convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::StreamExt;
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{
    error::ApiError,
    resources::ResourceType,
    selector::FieldSelector,
    server::{Body, Query, Target, error, filter},
    store::{Filter, Store, WatchEvent},
    views::to_table,
};

/// Default watch duration when the client sets no timeoutSeconds.
pub const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);
/// Interval between bookmarks on watches that asked for them.
pub const BOOKMARK_INTERVAL: Duration = Duration::from_secs(60);

/// Renders watch events as the client asked: objects, or one-row Tables for `kubectl get -w`
/// (column definitions on the first only, as the API server does).
struct EventFormat {
    table: bool,
    columns_sent: bool,
    store: Arc<Store>,
    /// The kind asked for when it is a second API of the stored one (core v1 Events).
    view: Option<Arc<ResourceType>>,
}

impl EventFormat {
    fn line(&mut self, rt: &ResourceType, event: &WatchEvent) -> Bytes {
        let (rt, object) = match &self.view {
            Some(view) => (view.as_ref(), super::events::to_core(event.object())),
            None if !self.table => return event_line(event),
            None => (rt, event.object()),
        };
        if !self.table {
            return encode(&json!({"type": event.kind.as_str(), "object": object}));
        }
        let mut table = to_table(rt, &object, self.store.clock().now());
        if self.columns_sent {
            table["columnDefinitions"] = json!([]);
        }
        self.columns_sent = true;
        encode(&json!({"type": event.kind.as_str(), "object": table}))
    }
}

/// A line waiting to be sent. Events are kept as they are stored and written out only when
/// sent, so a watch catching up on thousands of changes holds no copies of them.
enum Pending {
    Event(Arc<WatchEvent>),
    Line(Bytes),
}

struct WatchState {
    format: EventFormat,
    pending: VecDeque<Pending>,
    receiver: broadcast::Receiver<Arc<WatchEvent>>,
    rt: Arc<ResourceType>,
    filter: Filter,
    deadline: tokio::time::Instant,
    bookmarks: bool,
    last_rv: u64,
    /// Newest resourceVersion this stream has passed on or skipped: after a catch-up from
    /// the history, live events up to it are duplicates.
    seen_rv: u64,
    next_bookmark: tokio::time::Instant,
    done: bool,
    /// Fault generation the stream opened in; a newer one ends it.
    generation: u64,
}

/// A watch line around the stored JSON, so an event is not parsed and re-serialized for
/// every watcher.
fn event_line(event: &WatchEvent) -> Bytes {
    let text = event.object.json();
    let kind = event.kind.as_str();
    let mut line = Vec::with_capacity(text.len() + kind.len() + 24);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(&text);
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

/// One watch line: the value as JSON and a newline.
fn encode(line: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(line).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

pub(super) fn watch_response(
    store: &Arc<Store>,
    target: &Target,
    query: &Query,
    table: bool,
    view: Option<Arc<ResourceType>>,
) -> Response<Body> {
    let mut format = EventFormat {
        table,
        columns_sent: false,
        store: store.clone(),
        view,
    };
    let filter = match filter(target, query) {
        Ok(f) => f,
        Err(e) => return error(&e),
    };
    let filter = match &target.name {
        Some(n) => {
            let mut f = filter;
            let by_name = FieldSelector::parse(&format!("metadata.name={n}")).unwrap_or_default();
            f.fields = by_name;
            f
        }
        None => filter,
    };
    let since = match query.get("resourceVersion") {
        None | Some("") | Some("0") => None,
        Some(rv) => match rv.parse::<u64>() {
            Ok(v) => Some(v),
            Err(_) => {
                return error(&ApiError::bad_request(format!(
                    "invalid resourceVersion {rv:?}"
                )));
            }
        },
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_WATCH_TIMEOUT);
    let now = tokio::time::Instant::now();
    let current = store.current_rv();
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut seen_rv = current;
    let receiver = match store.watch(&target.rt, &filter, since) {
        Ok((initial, receiver, subscribed_at)) => {
            pending.extend(initial.into_iter().map(Pending::Event));
            seen_rv = subscribed_at;
            Some(receiver)
        }
        Err(e) => {
            if e.code == 410 {
                store.faults().count_resume_refused();
            }
            pending.push_back(Pending::Line(encode(
                &json!({"type": "ERROR", "object": e.status()}),
            )));
            None
        }
    };
    let send_initial_end = query.flag("sendInitialEvents");
    if send_initial_end && receiver.is_some() {
        pending.push_back(Pending::Line(encode(&bookmark(&target.rt, current, true))));
    }
    let Some(receiver) = receiver else {
        let lines = pending.into_iter().map(move |p| match p {
            Pending::Event(event) => line_frame(format.line(&target.rt, &event)),
            Pending::Line(line) => line_frame(line),
        });
        return stream_response(futures::stream::iter(lines.collect::<Vec<_>>()).boxed());
    };
    let state = WatchState {
        format,
        pending,
        receiver,
        rt: target.rt.clone(),
        filter,
        deadline: now + timeout,
        bookmarks: query.flag("allowWatchBookmarks"),
        last_rv: since.unwrap_or(current).max(current),
        seen_rv,
        next_bookmark: now + BOOKMARK_INTERVAL,
        done: false,
        generation: store.faults().watch_generation(),
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        loop {
            match s.pending.pop_front() {
                Some(Pending::Event(event)) => {
                    if let Some(lag) = s.format.store.faults().watch_lag(&s.rt.plural) {
                        tokio::time::sleep(lag).await;
                    }
                    let line = s.format.line(&s.rt, &event);
                    return Some((line_frame(line), s));
                }
                Some(Pending::Line(line)) => return Some((line_frame(line), s)),
                None => {}
            }
            if s.done {
                return None;
            }
            if s.format.store.faults().watch_generation() != s.generation {
                s.format.store.faults().count_watch_dropped();
                return None;
            }
            let wake = if s.bookmarks {
                s.deadline.min(s.next_bookmark)
            } else {
                s.deadline
            };
            tokio::select! {
                received = s.receiver.recv() => match received {
                    Ok(event) if event.rv <= s.seen_rv => {}
                    Ok(event) => {
                        s.seen_rv = event.rv;
                        if event.group == s.rt.group && event.plural == s.rt.plural && s.filter.matches_packed(&event.namespace, &event.object) {
                            s.last_rv = event.rv;
                            s.pending.push_back(Pending::Event(event));
                        }
                    }
                    // The live feed dropped events: take them from the history instead, and
                    // relist only when the history no longer holds them.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        match s.format.store.replay(&s.rt, &s.filter, s.seen_rv) {
                            Ok((events, now_rv)) => {
                                for event in events {
                                    s.last_rv = event.rv;
                                    s.pending.push_back(Pending::Event(event));
                                }
                                s.seen_rv = now_rv;
                            }
                            Err(e) => {
                                s.pending.push_back(Pending::Line(encode(&json!({"type": "ERROR", "object": e.status()}))));
                                s.done = true;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => s.done = true,
                },
                _ = s.format.store.faults().dropped.notified() => {
                    s.format.store.faults().count_watch_dropped();
                    s.done = true;
                }
                _ = tokio::time::sleep_until(wake) => {
                    if tokio::time::Instant::now() >= s.deadline {
                        s.done = true;
                    } else {
                        s.next_bookmark = tokio::time::Instant::now() + BOOKMARK_INTERVAL;
                        s.pending.push_back(Pending::Line(encode(&bookmark(&s.rt, s.last_rv, false))));
                    }
                }
            }
        }
    });
    stream_response(stream.boxed())
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Value {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": metadata}})
}

fn line_frame(line: Bytes) -> Result<Frame<Bytes>, Infallible> {
    Ok(Frame::data(line))
}

fn stream_response(
    stream: futures::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>,
) -> Response<Body> {
    let mut response = Response::new(StreamBody::new(stream).boxed_unsync());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
