//! The columns kube-apiserver prints for the built-in kinds (`kubectl get pods` shows
//! READY and STATUS, not only a name and an age), cell for cell as its printers fill them.

use serde_json::{Value, json};

use super::{
    events,
    views::{human_age, selector_string},
};

/// One column: name and priority (1 shows only with `-o wide`).
type Column = (&'static str, u8);

/// Fills one object's row at a given time.
type Cells = fn(&Value, jiff::Timestamp) -> Vec<Value>;

/// A built-in kind's columns and the function that fills a row of them.
pub(super) struct Printer {
    /// The columns, in order.
    pub columns: &'static [Column],
    /// The cells of one object's row.
    pub cells: Cells,
}

/// The printer kube-apiserver has for a built-in kind, if the sim serves one like it.
pub(super) fn printer(group: &str, plural: &str) -> Option<Printer> {
    let (columns, cells): (&'static [Column], Cells) = match (group, plural) {
        ("", "pods") => (
            &[
                ("Name", 0),
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0),
                ("IP", 1),
                ("Node", 1),
                ("Nominated Node", 1),
                ("Readiness Gates", 1),
            ],
            pod,
        ),
        ("apps", "deployments") => (
            &[
                ("Name", 0),
                ("Ready", 0),
                ("Up-to-date", 0),
                ("Available", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1),
            ],
            deployment,
        ),
        ("batch", "jobs") => (
            &[
                ("Name", 0),
                ("Status", 0),
                ("Completions", 0),
                ("Duration", 0),
                ("Age", 0),
                ("Containers", 1),
                ("Images", 1),
                ("Selector", 1),
            ],
            job,
        ),
        ("", "services") => (
            &[
                ("Name", 0),
                ("Type", 0),
                ("Cluster-IP", 0),
                ("External-IP", 0),
                ("Port(s)", 0),
                ("Age", 0),
                ("Selector", 1),
            ],
            service,
        ),
        ("" | "events.k8s.io", "events") => (
            &[
                ("Last Seen", 0),
                ("Type", 0),
                ("Reason", 0),
                ("Object", 0),
                ("Subobject", 1),
                ("Source", 1),
                ("Message", 0),
                ("First Seen", 1),
                ("Count", 1),
                ("Name", 1),
            ],
            event,
        ),
        ("", "configmaps") => (&[("Name", 0), ("Data", 0), ("Age", 0)], config_map),
        ("", "secrets") => (&[("Name", 0), ("Type", 0), ("Data", 0), ("Age", 0)], secret),
        ("", "namespaces") => (&[("Name", 0), ("Status", 0), ("Age", 0)], namespace),
        ("", "serviceaccounts") => (&[("Name", 0), ("Age", 0)], service_account),
        _ => return None,
    };
    Some(Printer { columns, cells })
}

/// A column definition as a Table carries it.
pub(super) fn definition((name, priority): Column) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": "string", "format": format, "description": name, "priority": priority})
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn count(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn items<'a>(object: &'a Value, pointer: &str) -> &'a [Value] {
    object
        .pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn or_none(value: &str) -> Value {
    json!(if value.is_empty() { "<none>" } else { value })
}

fn timestamp(value: &str) -> Option<jiff::Timestamp> {
    value.parse().ok()
}

/// An age as kubectl prints it, `<unknown>` without a time.
fn since(value: &str, now: jiff::Timestamp) -> String {
    match timestamp(value) {
        Some(then) => human_age(now.duration_since(then).as_secs().max(0) as u64),
        None => "<unknown>".into(),
    }
}

fn age(object: &Value, now: jiff::Timestamp) -> Value {
    json!(since(text(object, "/metadata/creationTimestamp"), now))
}

fn name(object: &Value) -> Value {
    json!(text(object, "/metadata/name"))
}

/// `app=web,tier=front` from a label map.
fn labels(map: Option<&Value>) -> String {
    map.map(selector_string).unwrap_or_default()
}

fn containers_and_images(template_spec: &Value) -> (Value, Value) {
    let containers = items(template_spec, "/containers");
    let join = |field: &str| {
        containers
            .iter()
            .map(|c| text(c, field))
            .collect::<Vec<_>>()
            .join(",")
    };
    (json!(join("/name")), json!(join("/image")))
}

fn pod(object: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let statuses = items(object, "/status/containerStatuses");
    let total = items(object, "/spec/containers").len();
    let ready = statuses
        .iter()
        .filter(|s| s.get("ready").and_then(Value::as_bool) == Some(true))
        .count();
    let restarts: i64 = statuses.iter().map(|s| count(s, "/restartCount")).sum();
    let mut reason = match text(object, "/status/reason") {
        "" => text(object, "/status/phase").to_string(),
        r => r.to_string(),
    };
    for status in statuses {
        let waiting = text(status, "/state/waiting/reason");
        let terminated = text(status, "/state/terminated/reason");
        if !waiting.is_empty() {
            reason = waiting.to_string();
        } else if !terminated.is_empty() {
            reason = terminated.to_string();
        }
    }
    if object.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    vec![
        name(object),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts.to_string()),
        age(object, now),
        or_none(text(object, "/status/podIP")),
        or_none(text(object, "/spec/nodeName")),
        or_none(text(object, "/status/nominatedNodeName")),
        json!("<none>"),
    ]
}

fn deployment(object: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let desired = object
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let (containers, images) = containers_and_images(
        object
            .pointer("/spec/template/spec")
            .unwrap_or(&Value::Null),
    );
    vec![
        name(object),
        json!(format!(
            "{}/{desired}",
            count(object, "/status/readyReplicas")
        )),
        json!(count(object, "/status/updatedReplicas")),
        json!(count(object, "/status/availableReplicas")),
        age(object, now),
        containers,
        images,
        json!(labels(object.pointer("/spec/selector/matchLabels"))),
    ]
}

fn condition_true(object: &Value, kind: &str) -> bool {
    items(object, "/status/conditions")
        .iter()
        .any(|c| text(c, "/type") == kind && text(c, "/status") == "True")
}

fn job(object: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let status = if condition_true(object, "Complete") {
        "Complete"
    } else if condition_true(object, "Failed") {
        "Failed"
    } else if object.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if object.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        "Suspended"
    } else {
        "Running"
    };
    let succeeded = count(object, "/status/succeeded");
    let completions = match object.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(n) => format!("{succeeded}/{n}"),
        None => {
            let parallelism = object
                .pointer("/spec/parallelism")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let duration = match (
        timestamp(text(object, "/status/startTime")),
        timestamp(text(object, "/status/completionTime")),
    ) {
        (Some(start), Some(end)) => human_age(end.duration_since(start).as_secs().max(0) as u64),
        (Some(start), None) => human_age(now.duration_since(start).as_secs().max(0) as u64),
        (None, _) => String::new(),
    };
    let (containers, images) = containers_and_images(
        object
            .pointer("/spec/template/spec")
            .unwrap_or(&Value::Null),
    );
    vec![
        name(object),
        json!(status),
        json!(completions),
        json!(duration),
        age(object, now),
        containers,
        images,
        json!(labels(object.pointer("/spec/selector/matchLabels"))),
    ]
}

fn service(object: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let kind = match text(object, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    };
    let external = match kind {
        "LoadBalancer" => {
            let ingress: Vec<&str> = items(object, "/status/loadBalancer/ingress")
                .iter()
                .map(|i| {
                    let ip = text(i, "/ip");
                    if ip.is_empty() {
                        text(i, "/hostname")
                    } else {
                        ip
                    }
                })
                .collect();
            if ingress.is_empty() {
                "<pending>".to_string()
            } else {
                ingress.join(",")
            }
        }
        "ExternalName" => text(object, "/spec/externalName").to_string(),
        _ => String::new(),
    };
    let ports: Vec<String> = items(object, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = match text(p, "/protocol") {
                "" => "TCP",
                protocol => protocol,
            };
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(node) => format!("{}:{node}/{protocol}", count(p, "/port")),
                None => format!("{}/{protocol}", count(p, "/port")),
            }
        })
        .collect();
    let selector = labels(object.pointer("/spec/selector"));
    vec![
        name(object),
        json!(kind),
        or_none(text(object, "/spec/clusterIP")),
        or_none(&external),
        or_none(&ports.join(",")),
        age(object, now),
        or_none(&selector),
    ]
}

fn event(object: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let core = events::to_core(object.clone());
    let first = match text(&core, "/firstTimestamp") {
        "" => since(text(&core, "/eventTime"), now),
        t => since(t, now),
    };
    let (last, count) = match core.get("series").filter(|s| s.is_object()) {
        Some(series) => (
            since(text(series, "/lastObservedTime"), now),
            series.get("count").and_then(Value::as_i64).unwrap_or(1),
        ),
        None => (
            match text(&core, "/lastTimestamp") {
                "" => first.clone(),
                t => since(t, now),
            },
            core.get("count")
                .and_then(Value::as_i64)
                .filter(|c| *c > 0)
                .unwrap_or(1),
        ),
    };
    let first_of = |a: &str, b: &str| {
        if a.is_empty() {
            b.to_string()
        } else {
            a.to_string()
        }
    };
    let component = first_of(
        text(&core, "/source/component"),
        text(&core, "/reportingComponent"),
    );
    let instance = first_of(
        text(&core, "/source/host"),
        text(&core, "/reportingInstance"),
    );
    let source = match (component.is_empty(), instance.is_empty()) {
        (true, _) => "<unknown>".to_string(),
        (false, true) => component,
        (false, false) => format!("{component}, {instance}"),
    };
    vec![
        json!(last),
        json!(text(&core, "/type")),
        json!(text(&core, "/reason")),
        json!(format!(
            "{}/{}",
            text(&core, "/involvedObject/kind").to_lowercase(),
            text(&core, "/involvedObject/name")
        )),
        json!(text(&core, "/involvedObject/fieldPath")),
        json!(source),
        json!(text(&core, "/message")),
        json!(first),
        json!(count),
        name(object),
    ]
}

fn entries(object: &Value, field: &str) -> usize {
    object
        .get(field)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

fn config_map(object: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let data = entries(object, "data") + entries(object, "binaryData");
    vec![name(object), json!(data), age(object, now)]
}

fn secret(object: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let kind = match text(object, "/type") {
        "" => "Opaque",
        t => t,
    };
    vec![
        name(object),
        json!(kind),
        json!(entries(object, "data")),
        age(object, now),
    ]
}

fn namespace(object: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let phase = match text(object, "/status/phase") {
        "" => "Active",
        p => p,
    };
    vec![name(object), json!(phase), age(object, now)]
}

fn service_account(object: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![name(object), age(object, now)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    fn row(group: &str, plural: &str, object: Value) -> Vec<(&'static str, Value)> {
        let printer = printer(group, plural).unwrap();
        let cells = (printer.cells)(&object, now());
        assert_eq!(cells.len(), printer.columns.len(), "one cell per column");
        printer.columns.iter().map(|c| c.0).zip(cells).collect()
    }

    fn cell(row: &[(&str, Value)], column: &str) -> Value {
        row.iter()
            .find(|(c, _)| *c == column)
            .map(|(_, v)| v.clone())
            .unwrap()
    }

    const CREATED: &str = "2026-01-01T00:00:00Z";

    #[test]
    fn a_pod_shows_ready_containers_status_and_restarts() {
        let pod = json!({"metadata": {"name": "web-1", "creationTimestamp": CREATED},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "node-1"},
            "status": {"phase": "Running", "podIP": "127.1.0.2", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2},
                {"name": "b", "ready": false, "restartCount": 1,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let row = row("", "pods", pod.clone());
        assert_eq!(cell(&row, "Ready"), "1/2");
        assert_eq!(cell(&row, "Status"), "CrashLoopBackOff");
        assert_eq!(cell(&row, "Restarts"), "3");
        assert_eq!(cell(&row, "Age"), "10m");
        assert_eq!(cell(&row, "IP"), "127.1.0.2");
        assert_eq!(cell(&row, "Node"), "node-1");
        let mut deleting = pod;
        deleting["metadata"]["deletionTimestamp"] = json!(CREATED);
        assert_eq!(
            cell(&super::tests::row("", "pods", deleting), "Status"),
            "Terminating"
        );
        let completed = json!({"metadata": {"name": "j"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [
                {"name": "a", "ready": false, "state": {"terminated": {"reason": "Completed"}}}]}});
        let row = super::tests::row("", "pods", completed);
        assert_eq!(cell(&row, "Status"), "Completed");
        assert_eq!(cell(&row, "IP"), "<none>");
        assert_eq!(cell(&row, "Age"), "<unknown>");
    }

    #[test]
    fn a_deployment_shows_ready_of_desired() {
        let row = row(
            "apps",
            "deployments",
            json!({"metadata": {"name": "web", "creationTimestamp": CREATED},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"spec": {"containers": [{"name": "web", "image": "web:2"}, {"name": "proxy", "image": "envoy:1"}]}}},
                "status": {"readyReplicas": 2, "updatedReplicas": 1, "availableReplicas": 2}}),
        );
        assert_eq!(cell(&row, "Ready"), "2/3");
        assert_eq!(cell(&row, "Up-to-date"), 1);
        assert_eq!(cell(&row, "Available"), 2);
        assert_eq!(cell(&row, "Containers"), "web,proxy");
        assert_eq!(cell(&row, "Images"), "web:2,envoy:1");
        assert_eq!(cell(&row, "Selector"), "app=web");
        let empty = super::tests::row("apps", "deployments", json!({"metadata": {"name": "x"}}));
        assert_eq!(cell(&empty, "Ready"), "0/1", "replicas default to one");
    }

    #[test]
    fn a_job_shows_status_completions_and_duration() {
        let done = row(
            "batch",
            "jobs",
            json!({"metadata": {"name": "m"}, "spec": {"completions": 1},
                "status": {"succeeded": 1, "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:03Z",
                    "conditions": [{"type": "Complete", "status": "True"}]}}),
        );
        assert_eq!(cell(&done, "Status"), "Complete");
        assert_eq!(cell(&done, "Completions"), "1/1");
        assert_eq!(cell(&done, "Duration"), "3s");
        let running = row(
            "batch",
            "jobs",
            json!({"metadata": {"name": "m"}, "spec": {"parallelism": 2},
                "status": {"startTime": "2026-01-01T00:09:00Z"}}),
        );
        assert_eq!(cell(&running, "Status"), "Running");
        assert_eq!(cell(&running, "Completions"), "0/1 of 2");
        assert_eq!(cell(&running, "Duration"), "60s");
        let failed = row(
            "batch",
            "jobs",
            json!({"metadata": {"name": "m"}, "status": {"conditions": [{"type": "Failed", "status": "True"}]}}),
        );
        assert_eq!(cell(&failed, "Status"), "Failed");
        assert_eq!(cell(&failed, "Duration"), "");
    }

    #[test]
    fn a_service_shows_its_type_address_and_ports() {
        let row = row(
            "",
            "services",
            json!({"metadata": {"name": "web"}, "spec": {"clusterIP": "10.0.0.1", "selector": {"app": "web"},
                "ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "nodePort": 30053}]}}),
        );
        assert_eq!(cell(&row, "Type"), "ClusterIP");
        assert_eq!(cell(&row, "Cluster-IP"), "10.0.0.1");
        assert_eq!(cell(&row, "External-IP"), "<none>");
        assert_eq!(cell(&row, "Port(s)"), "80/TCP,53:30053/UDP");
        assert_eq!(cell(&row, "Selector"), "app=web");
        let lb = super::tests::row(
            "",
            "services",
            json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer"}}),
        );
        assert_eq!(cell(&lb, "External-IP"), "<pending>");
        assert_eq!(cell(&lb, "Port(s)"), "<none>");
    }

    #[test]
    fn an_event_shows_when_what_and_who_in_either_api() {
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.1"}, "eventTime": "2026-01-01T00:09:30.000000Z",
            "type": "Warning", "reason": "Aborted", "note": "error rate 0.2",
            "regarding": {"kind": "Rollout", "name": "web"},
            "reportingController": "cutover.dev/operator", "reportingInstance": "cutover-0"});
        for (group, object) in [("events.k8s.io", v1.clone()), ("", events::to_core(v1))] {
            let row = row(group, "events", object);
            assert_eq!(cell(&row, "Last Seen"), "30s");
            assert_eq!(cell(&row, "First Seen"), "30s");
            assert_eq!(cell(&row, "Type"), "Warning");
            assert_eq!(cell(&row, "Object"), "rollout/web");
            assert_eq!(cell(&row, "Message"), "error rate 0.2");
            assert_eq!(cell(&row, "Source"), "cutover.dev/operator, cutover-0");
            assert_eq!(cell(&row, "Count"), 1);
            assert_eq!(cell(&row, "Name"), "web.1");
        }
        let legacy = row(
            "",
            "events",
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "j.1"},
                "involvedObject": {"kind": "Job", "name": "j"}, "source": {"component": "job-controller"},
                "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:08:00Z", "count": 4}),
        );
        assert_eq!(cell(&legacy, "Last Seen"), "2m");
        assert_eq!(cell(&legacy, "First Seen"), "10m");
        assert_eq!(cell(&legacy, "Count"), 4);
        assert_eq!(cell(&legacy, "Source"), "job-controller");
    }

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        let cases = [
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (192, "3m12s"),
            (600, "10m"),
            (10_799, "179m"),
            (10_800, "3h"),
            (5 * 3600 + 7 * 60, "5h7m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (2 * 86_400 + 5 * 3600, "2d5h"),
            (8 * 86_400, "8d"),
            (730 * 86_400, "2y"),
            (731 * 86_400, "2y1d"),
            (9 * 365 * 86_400, "9y"),
        ];
        for (secs, text) in cases {
            assert_eq!(human_age(secs), text, "{secs}s");
        }
    }

    #[test]
    fn config_secrets_namespaces_and_accounts() {
        let cm = row(
            "",
            "configmaps",
            json!({"metadata": {"name": "c"}, "data": {"a": "1"}, "binaryData": {"b": "AA=="}}),
        );
        assert_eq!(cell(&cm, "Data"), 2);
        let secret = row(
            "",
            "secrets",
            json!({"metadata": {"name": "s"}, "data": {"a": "MQ=="}}),
        );
        assert_eq!(cell(&secret, "Type"), "Opaque");
        assert_eq!(cell(&secret, "Data"), 1);
        let ns = row("", "namespaces", json!({"metadata": {"name": "n"}}));
        assert_eq!(cell(&ns, "Status"), "Active");
        let terminating = row(
            "",
            "namespaces",
            json!({"metadata": {"name": "n"}, "status": {"phase": "Terminating"}}),
        );
        assert_eq!(cell(&terminating, "Status"), "Terminating");
        assert_eq!(
            row(
                "",
                "serviceaccounts",
                json!({"metadata": {"name": "default"}})
            )
            .len(),
            2
        );
        assert!(
            printer("", "leases").is_none(),
            "kinds without a printer keep name and age"
        );
    }
}
