//! What kube-apiserver refuses in any object's labels and in the built-in kinds a controller
//! writes: a Deployment without a selector that matches its pods, a container without an
//! image, a Job that would restart for ever, a change to an immutable ConfigMap or Secret.

use serde_json::Value;

use super::name_of;
use crate::sim::{error::ApiError, resources::ResourceType};

type Errors = Vec<(String, String)>;

/// Refuses a built-in object whose fields have the wrong types (`replicas: three`), as
/// kube-apiserver's decoder does with 400 before validating; checked after the sim's own
/// validation, which answers what both would refuse with 422.
pub(super) fn decodes(rt: &ResourceType, object: &Value) -> Result<(), ApiError> {
    if rt.schema.is_some() {
        return Ok(());
    }
    let Some(typed) = crate::sim::kinds::typed(&rt.group, &rt.kind) else {
        return Ok(());
    };
    (typed.decode)(object).map_err(|e| {
        let (kind, version) = (&rt.kind, &rt.version);
        ApiError::bad_request(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: {e}"
        ))
    })
}

/// A label name (`[prefix/]name`) or value, as the API server checks it.
fn label_part_ok(part: &str) -> bool {
    part.len() <= 63
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && part
            .chars()
            .next()
            .is_none_or(|c| c.is_ascii_alphanumeric())
        && part
            .chars()
            .last()
            .is_none_or(|c| c.is_ascii_alphanumeric())
}

fn label_key_ok(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    !name.is_empty()
        && label_part_ok(name)
        && prefix.is_none_or(|p| p.len() <= 253 && crate::cli::lint::is_dns_subdomain(p))
}

fn labels(path: &str, labels: Option<&Value>, errors: &mut Errors) {
    let Some(map) = labels.and_then(Value::as_object) else {
        return;
    };
    for (key, value) in map {
        if !label_key_ok(key) {
            errors.push((
                path.to_string(),
                format!("Invalid value: {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
            ));
        }
        match value.as_str() {
            Some(v) if label_part_ok(v) => {}
            _ => errors.push((
                path.to_string(),
                format!("Invalid value: {value}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
            )),
        }
    }
}

/// Containers of a pod spec at `path`: at least one, each with a name and an image.
fn containers(path: &str, pod_spec: Option<&Value>, errors: &mut Errors) {
    let list = pod_spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    match list {
        None => errors.push((format!("{path}.containers"), "Required value".into())),
        Some(list) if list.is_empty() => {
            errors.push((format!("{path}.containers"), "Required value".into()))
        }
        Some(list) => {
            for (i, c) in list.iter().enumerate() {
                for field in ["name", "image"] {
                    if c.get(field)
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        errors.push((
                            format!("{path}.containers[{i}].{field}"),
                            "Required value".into(),
                        ));
                    }
                }
            }
        }
    }
}

fn deployment(object: &Value, errors: &mut Errors) {
    let selector = object.pointer("/spec/selector");
    let Some(selector) = selector.filter(|s| !s.as_object().is_some_and(|m| m.is_empty())) else {
        errors.push(("spec.selector".into(), "Required value".into()));
        return;
    };
    let template_labels = object.pointer("/spec/template/metadata/labels");
    let wanted = selector.get("matchLabels").and_then(Value::as_object);
    let matches = wanted.is_none_or(|wanted| {
        wanted
            .iter()
            .all(|(k, v)| template_labels.and_then(|l| l.get(k)) == Some(v))
    });
    if !matches {
        errors.push((
            "spec.template.metadata.labels".into(),
            "Invalid value: `selector` does not match template `labels`".into(),
        ));
    }
    containers(
        "spec.template.spec",
        object.pointer("/spec/template/spec"),
        errors,
    );
}

fn job(object: &Value, errors: &mut Errors) {
    containers(
        "spec.template.spec",
        object.pointer("/spec/template/spec"),
        errors,
    );
    match object
        .pointer("/spec/template/spec/restartPolicy")
        .and_then(Value::as_str)
    {
        Some("Never" | "OnFailure") => {}
        _ => errors.push((
            "spec.template.spec.restartPolicy".into(),
            "Required value: valid values: \"OnFailure\", \"Never\"".into(),
        )),
    }
}

/// A ConfigMap or Secret marked `immutable` keeps its data and the mark.
fn immutable_data(old: &Value, new: &Value, errors: &mut Errors) {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    for field in ["data", "binaryData", "immutable"] {
        if old.get(field) != new.get(field) {
            errors.push((
                field.to_string(),
                "Forbidden: field is immutable when `immutable` is set".into(),
            ));
        }
    }
}

/// The API server's checks of a write of `new` (over `old` for an update).
pub(super) fn check(rt: &ResourceType, new: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let mut errors = Errors::new();
    labels(
        "metadata.labels",
        new.pointer("/metadata/labels"),
        &mut errors,
    );
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("apps", "deployments") => deployment(new, &mut errors),
        ("batch", "jobs") => job(new, &mut errors),
        ("", "pods") => containers("spec", new.get("spec"), &mut errors),
        ("", "configmaps" | "secrets") => {
            if let Some(old) = old {
                immutable_data(old, new, &mut errors);
            }
        }
        _ => {}
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&rt.kind, &name_of(new), errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::resources::builtins;
    use serde_json::json;

    fn rt(plural: &str) -> ResourceType {
        builtins().into_iter().find(|t| t.plural == plural).unwrap()
    }

    fn fields(result: Result<(), ApiError>) -> String {
        match result {
            Ok(()) => String::new(),
            Err(e) => e.message,
        }
    }

    #[test]
    fn labels_follow_the_api_servers_syntax() {
        for key in ["app", "app.kubernetes.io/name", "a_b.c-d", "x/y"] {
            assert!(label_key_ok(key), "{key}");
        }
        for key in ["", "-app", "app-", "Bad_Prefix/x", "a/", &"n".repeat(64)] {
            assert!(!label_key_ok(key), "{key}");
        }
        assert!(label_part_ok(""), "an empty value is allowed");
        assert!(!label_part_ok("has space"));
        let cm = rt("configmaps");
        let bad = json!({"metadata": {"name": "c", "labels": {"app": "-web"}}});
        assert!(fields(check(&cm, &bad, None)).contains("metadata.labels"));
        let good = json!({"metadata": {"name": "c", "labels": {"app.kubernetes.io/name": "web"}}});
        assert!(check(&cm, &good, None).is_ok());
    }

    #[test]
    fn a_deployment_needs_a_selector_matching_its_pods_and_images() {
        let d = rt("deployments");
        let ok = json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web", "extra": "x"}},
                "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}});
        assert!(check(&d, &ok, None).is_ok());
        let mut no_selector = ok.clone();
        no_selector["spec"]
            .as_object_mut()
            .unwrap()
            .remove("selector");
        assert!(fields(check(&d, &no_selector, None)).contains("spec.selector"));
        let mut mismatch = ok.clone();
        mismatch["spec"]["template"]["metadata"]["labels"] = json!({"app": "api"});
        assert!(fields(check(&d, &mismatch, None)).contains("does not match"));
        let mut no_image = ok.clone();
        no_image["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("image");
        assert!(fields(check(&d, &no_image, None)).contains("containers[0].image"));
        let mut none = ok;
        none["spec"]["template"]["spec"]["containers"] = json!([]);
        assert!(fields(check(&d, &none, None)).contains("spec.template.spec.containers"));
    }

    #[test]
    fn a_job_restarts_never_or_on_failure() {
        let j = rt("jobs");
        let job = |policy: Value| {
            json!({"metadata": {"name": "m"}, "spec": {"template": {"spec": {
            "restartPolicy": policy, "containers": [{"name": "m", "image": "m:1"}]}}}})
        };
        assert!(check(&j, &job(json!("Never")), None).is_ok());
        assert!(check(&j, &job(json!("OnFailure")), None).is_ok());
        assert!(fields(check(&j, &job(json!("Always")), None)).contains("restartPolicy"));
    }

    #[test]
    fn an_immutable_config_map_keeps_its_data() {
        let cm = rt("configmaps");
        let old = json!({"metadata": {"name": "c"}, "data": {"k": "v"}, "immutable": true});
        let changed = json!({"metadata": {"name": "c"}, "data": {"k": "w"}, "immutable": true});
        assert!(fields(check(&cm, &changed, Some(&old))).contains("immutable"));
        let unmarked = json!({"metadata": {"name": "c"}, "data": {"k": "v"}, "immutable": false});
        assert!(check(&cm, &unmarked, Some(&old)).is_err(), "the mark stays");
        let labelled = json!({"metadata": {"name": "c", "labels": {"a": "b"}}, "data": {"k": "v"}, "immutable": true});
        assert!(
            check(&cm, &labelled, Some(&old)).is_ok(),
            "metadata may change"
        );
        let mutable = json!({"metadata": {"name": "c"}, "data": {"k": "v"}});
        assert!(check(&cm, &changed, Some(&mutable)).is_ok());
    }
}
