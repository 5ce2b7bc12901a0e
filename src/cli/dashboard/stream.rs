//! The page's live feed: one watch per kind the dashboard shows, made as the user, each
//! change sent as a server-sent event. A kind the user may not read shows its error and
//! leaves the others running.

use futures::{Stream, StreamExt, stream::BoxStream};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Map, Value, json};

use crate::api::{FeatureFlag, LABEL_ROLLOUT, MigrationJob, Rollout};

/// A kind the dashboard shows, and how it is watched.
pub struct Feed {
    /// Name the page knows it by (`Rollout`, `Pod`...).
    pub kind: &'static str,
    resource: ApiResource,
    /// Only objects cutover made (Deployments, Pods).
    owned_only: bool,
}

/// Every kind the page shows.
pub fn feeds() -> Vec<Feed> {
    use k8s_openapi::api::{apps::v1::Deployment, core::v1::Event, core::v1::Pod};
    vec![
        Feed {
            kind: "Rollout",
            resource: ApiResource::erase::<Rollout>(&()),
            owned_only: false,
        },
        Feed {
            kind: "MigrationJob",
            resource: ApiResource::erase::<MigrationJob>(&()),
            owned_only: false,
        },
        Feed {
            kind: "FeatureFlag",
            resource: ApiResource::erase::<FeatureFlag>(&()),
            owned_only: false,
        },
        Feed {
            kind: "Deployment",
            resource: ApiResource::erase::<Deployment>(&()),
            owned_only: true,
        },
        Feed {
            kind: "Pod",
            resource: ApiResource::erase::<Pod>(&()),
            owned_only: true,
        },
        Feed {
            kind: "Event",
            resource: ApiResource::erase::<Event>(&()),
            owned_only: false,
        },
    ]
}

/// The merged changes of every feed in `namespace` (all namespaces when `None`), each a
/// JSON message for the page.
pub fn changes(client: Client, namespace: Option<&str>) -> BoxStream<'static, Value> {
    let streams = feeds().into_iter().map(|feed| {
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &feed.resource),
            None => Api::all_with(client.clone(), &feed.resource),
        };
        let mut config = watcher::Config::default();
        if feed.owned_only {
            config = config.labels(LABEL_ROLLOUT);
        }
        watch(api, config, feed.kind).boxed()
    });
    futures::stream::select_all(streams).boxed()
}

fn watch(
    api: Api<DynamicObject>,
    config: watcher::Config,
    kind: &'static str,
) -> impl Stream<Item = Value> {
    // Backoff: a kind the user may not list is retried slowly, and its error shown each time.
    watcher(api, config).default_backoff().map(move |event| match event {
        Ok(watcher::Event::Init) => message(kind, "reset", None),
        Ok(watcher::Event::InitApply(o)) | Ok(watcher::Event::Apply(o)) => {
            message(kind, "apply", Some(object(kind, o)))
        }
        Ok(watcher::Event::InitDone) => message(kind, "ready", None),
        Ok(watcher::Event::Delete(o)) => message(kind, "delete", Some(object(kind, o))),
        Err(error) => {
            json!({"kind": kind, "type": "error", "message": crate::controller::error::one_line(&error)})
        }
    })
}

fn object(kind: &str, o: DynamicObject) -> Value {
    serde_json::to_value(o).map_or(Value::Null, |v| slim(kind, v))
}

/// One message: `{kind, type, object}`; `reset` empties the kind, `ready` ends its list.
pub fn message(kind: &str, kind_of_change: &str, object: Option<Value>) -> Value {
    let mut m = json!({"kind": kind, "type": kind_of_change});
    if let Some(o) = object {
        m["object"] = o;
    }
    m
}

/// What the page needs of an object: no managed fields and no copies of the spec kept in
/// annotations; of a Pod its phase, readiness and images; of an Event its text and subject.
pub fn slim(kind: &str, mut v: Value) -> Value {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.retain(|k, _| {
                k != "kubectl.kubernetes.io/last-applied-configuration"
                    && k != crate::api::ANNOTATION_TEMPLATE
            });
        }
    }
    match kind {
        "Pod" => keep(
            &v,
            &[
                "metadata",
                "status.phase",
                "status.conditions",
                "status.containerStatuses",
                "spec.containers",
            ],
        ),
        "Event" => keep(
            &v,
            &[
                "metadata",
                "involvedObject",
                "reason",
                "message",
                "type",
                "count",
                "firstTimestamp",
                "lastTimestamp",
                "eventTime",
                "series",
            ],
        ),
        "Deployment" => keep(
            &v,
            &["metadata", "spec.replicas", "spec.template", "status"],
        ),
        _ => v,
    }
}

/// A copy of `v` with only the dotted paths listed.
fn keep(v: &Value, paths: &[&str]) -> Value {
    let mut out = Value::Object(Map::new());
    for path in paths {
        let parts: Vec<&str> = path.split('.').collect();
        let mut from = v;
        let mut found = true;
        for part in &parts {
            match from.get(part) {
                Some(next) => from = next,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            continue;
        }
        let mut to = &mut out;
        for part in &parts[..parts.len() - 1] {
            if !to.get(*part).is_some_and(Value::is_object) {
                to[*part] = Value::Object(Map::new());
            }
            to = &mut to[*part];
        }
        to[parts[parts.len() - 1]] = from.clone();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_fields_and_spec_copies_never_reach_the_page() {
        let v = json!({"metadata": {"name": "web", "managedFields": [{"manager": "x"}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}",
                "cutover.dev/template": "{...}", "team": "payments"}},
            "spec": {"replicas": 3}, "status": {"phase": "Healthy"}});
        let s = slim("Rollout", v);
        assert_eq!(s["metadata"]["name"], "web");
        assert!(s["metadata"].get("managedFields").is_none());
        assert_eq!(s["metadata"]["annotations"], json!({"team": "payments"}));
        assert_eq!(s["spec"]["replicas"], 3, "a Rollout is kept whole");
        assert_eq!(s["status"]["phase"], "Healthy");
    }

    #[test]
    fn a_pod_keeps_what_the_tree_draws() {
        let v = json!({"metadata": {"name": "web-1"},
            "spec": {"containers": [{"name": "web", "image": "web:2"}], "volumes": [{"name": "v"}],
                "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                "containerStatuses": [{"name": "web", "ready": true}]}});
        let s = slim("Pod", v);
        assert_eq!(
            s["spec"],
            json!({"containers": [{"name": "web", "image": "web:2"}]})
        );
        assert_eq!(s["status"]["phase"], "Running");
        assert_eq!(s["status"]["containerStatuses"][0]["ready"], true);
        assert!(s["status"].get("podIP").is_none());
        assert!(
            s.get("status").unwrap().get("conditions").is_none(),
            "absent stays absent"
        );
    }

    #[test]
    fn an_event_keeps_its_text_and_subject() {
        let v = json!({"metadata": {"name": "e1"}, "involvedObject": {"kind": "Rollout", "name": "web"},
            "reason": "StepStarted", "message": "step 1", "type": "Normal", "count": 2,
            "source": {"component": "cutover"}, "reportingInstance": "x"});
        let s = slim("Event", v);
        assert_eq!(s["involvedObject"]["name"], "web");
        assert_eq!(s["reason"], "StepStarted");
        assert_eq!(s["count"], 2);
        assert!(s.get("reportingInstance").is_none());
    }

    #[test]
    fn messages_name_kind_and_change() {
        assert_eq!(
            message("Pod", "reset", None),
            json!({"kind": "Pod", "type": "reset"})
        );
        assert_eq!(
            message("Rollout", "apply", Some(json!({"a": 1}))),
            json!({"kind": "Rollout", "type": "apply", "object": {"a": 1}})
        );
    }

    #[test]
    fn every_kind_the_page_draws_is_fed() {
        let kinds: Vec<&str> = feeds().iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [
                "Rollout",
                "MigrationJob",
                "FeatureFlag",
                "Deployment",
                "Pod",
                "Event"
            ]
        );
        let owned: Vec<&str> = feeds()
            .iter()
            .filter(|f| f.owned_only)
            .map(|f| f.kind)
            .collect();
        assert_eq!(owned, ["Deployment", "Pod"], "only cutover's own workloads");
    }
}
