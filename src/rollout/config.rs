//! Config that rolls out like code (`spec.configRollout`): the ConfigMaps a pod template
//! reads are part of its revision. Each revision gets its own copies, `<name>-<revision>`,
//! and its template reads those; so a change to a ConfigMap is a new revision that goes
//! through the steps, and an abort goes back to the old config with the old pods.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, PodSpec, PodTemplateSpec};

use super::revision::hash_text;

/// The ConfigMaps `template` reads (env, envFrom and volumes, projected ones included, of
/// every container and init container), sorted and each once.
pub fn references(template: &PodTemplateSpec) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(pod) = &template.spec {
        visit(pod, &mut |name: &mut String| names.push(name.clone()));
    }
    names.sort();
    names.dedup();
    names
}

/// Calls `f` on every ConfigMap name a pod spec reads.
fn visit(pod: &PodSpec, f: &mut dyn FnMut(&mut String)) {
    let mut pod = pod.clone();
    visit_mut(&mut pod, f);
}

fn visit_mut(pod: &mut PodSpec, f: &mut dyn FnMut(&mut String)) {
    let containers = pod
        .containers
        .iter_mut()
        .chain(pod.init_containers.iter_mut().flatten());
    for c in containers {
        for from in c.env_from.iter_mut().flatten() {
            if let Some(r) = &mut from.config_map_ref {
                f(&mut r.name);
            }
        }
        for env in c.env.iter_mut().flatten() {
            if let Some(r) = env
                .value_from
                .as_mut()
                .and_then(|v| v.config_map_key_ref.as_mut())
            {
                f(&mut r.name);
            }
        }
    }
    for v in pod.volumes.iter_mut().flatten() {
        if let Some(cm) = &mut v.config_map {
            f(&mut cm.name);
        }
        for source in v
            .projected
            .as_mut()
            .and_then(|p| p.sources.as_mut())
            .into_iter()
            .flatten()
        {
            if let Some(cm) = &mut source.config_map {
                f(&mut cm.name);
            }
        }
    }
}

/// The name of `name`'s copy for `revision`.
pub fn copy_name(name: &str, revision: &str) -> String {
    let suffix = format!("-{revision}");
    // A ConfigMap name is at most 253 characters; the revision keeps copies apart.
    let keep = 253usize.saturating_sub(suffix.len());
    let base: String = name.chars().take(keep).collect();
    format!("{base}{suffix}")
}

/// `template` reading `revision`'s copies instead of the ConfigMaps themselves.
pub fn rewrite(template: &PodTemplateSpec, revision: &str) -> PodTemplateSpec {
    let mut out = template.clone();
    if let Some(pod) = &mut out.spec {
        visit_mut(pod, &mut |name: &mut String| {
            *name = copy_name(name, revision)
        });
    }
    out
}

/// A ConfigMap's keys: `data`, then `binaryData` (base64, as the API has it).
pub type Keys = (BTreeMap<String, String>, BTreeMap<String, String>);

/// What a revision's config is: each ConfigMap's name and contents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Contents {
    /// By name.
    pub maps: BTreeMap<String, Keys>,
}

impl Contents {
    /// The contents of `maps`.
    pub fn of<'a>(maps: impl IntoIterator<Item = &'a ConfigMap>) -> Self {
        let maps = maps
            .into_iter()
            .map(|cm| {
                let binary = cm
                    .binary_data
                    .iter()
                    .flatten()
                    .map(|(k, v)| {
                        use base64::Engine;
                        (
                            k.clone(),
                            base64::engine::general_purpose::STANDARD.encode(&v.0),
                        )
                    })
                    .collect();
                (
                    cm.metadata.name.clone().unwrap_or_default(),
                    (cm.data.clone().unwrap_or_default(), binary),
                )
            })
            .collect();
        Self { maps }
    }
}

/// The revision of `template` with `contents`: the same template with the same config is
/// always the same revision, and a change to either is a new one.
pub fn revision(template: &PodTemplateSpec, contents: &Contents) -> String {
    let text = format!(
        "{}\n{}",
        serde_json::to_string(template).unwrap_or_default(),
        serde_json::to_string(&contents.maps).unwrap_or_default()
    );
    hash_text(&text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn template() -> PodTemplateSpec {
        serde_json::from_value(json!({"spec": {
            "initContainers": [{"name": "init", "envFrom": [{"configMapRef": {"name": "boot"}}]}],
            "containers": [{"name": "app", "image": "web:1",
                "envFrom": [{"configMapRef": {"name": "web-env"}}, {"secretRef": {"name": "s"}}],
                "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "web-flags", "key": "mode"}}},
                        {"name": "PLAIN", "value": "x"}]}],
            "volumes": [{"name": "conf", "configMap": {"name": "web-config"}},
                        {"name": "all", "projected": {"sources": [{"configMap": {"name": "web-env"}}]}},
                        {"name": "tmp", "emptyDir": {}}]
        }}))
        .expect("a template")
    }

    fn map(name: &str, data: serde_json::Value) -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).expect("a map")
    }

    #[test]
    fn every_kind_of_reference_is_found_once() {
        assert_eq!(
            references(&template()),
            vec!["boot", "web-config", "web-env", "web-flags"]
        );
    }

    #[test]
    fn the_rewritten_template_reads_the_revisions_copies_only() {
        let rewritten = rewrite(&template(), "abc");
        assert_eq!(
            references(&rewritten),
            vec!["boot-abc", "web-config-abc", "web-env-abc", "web-flags-abc"]
        );
        let text = serde_json::to_string(&rewritten).expect("json");
        assert!(
            text.contains("\"secretRef\":{\"name\":\"s\"}"),
            "Secrets are left: {text}"
        );
        assert_eq!(copy_name(&"n".repeat(253), "abc").len(), 253);
    }

    #[test]
    fn a_change_to_the_config_or_the_template_is_a_new_revision() {
        let t = template();
        let v1 = Contents::of([&map("web-config", json!({"level": "info"}))]);
        let v2 = Contents::of([&map("web-config", json!({"level": "debug"}))]);
        assert_eq!(revision(&t, &v1), revision(&t, &v1.clone()));
        assert_ne!(revision(&t, &v1), revision(&t, &v2));
        let mut other = t.clone();
        other.metadata = Some(Default::default());
        assert_ne!(revision(&t, &v1), revision(&other, &v1));
        // A key renamed with the same value is a change too.
        let v3 = Contents::of([&map("web-config", json!({"lvl": "info"}))]);
        assert_ne!(revision(&t, &v1), revision(&t, &v3));
    }
}
