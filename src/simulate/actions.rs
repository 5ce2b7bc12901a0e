//! What a scenario does to the sim: its manifests applied, its timed actions performed, as
//! a person with kubectl would.

use std::sync::Arc;

use serde_json::{Value, json};

use super::scenario::{self, Action, Manifest};
use crate::sim::{
    Sim,
    store::{PatchKind, Subresource, WriteOptions},
};

/// Serves HTTPRoute, GRPCRoute, Gateway and GatewayClass (a scenario's Gateway API canary
/// needs them) as minimal CRDs.
pub fn install_gateway_api(sim: &Sim) -> Result<(), String> {
    let crd_type = sim
        .store()
        .resolve("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .ok_or("the sim serves no CRDs")?;
    let kinds = [
        ("httproutes", "httproute", "HTTPRoute", "Namespaced"),
        ("grpcroutes", "grpcroute", "GRPCRoute", "Namespaced"),
        ("gateways", "gateway", "Gateway", "Namespaced"),
        ("gatewayclasses", "gatewayclass", "GatewayClass", "Cluster"),
    ];
    for (plural, singular, kind, scope) in kinds {
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.gateway.networking.k8s.io")},
            "spec": {"group": "gateway.networking.k8s.io", "scope": scope,
                "names": {"plural": plural, "singular": singular, "kind": kind, "listKind": format!("{kind}List")},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
        sim.store()
            .create(&crd_type, "", crd, &opts())
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn opts() -> WriteOptions {
    WriteOptions {
        field_manager: Some("cutover-simulate".into()),
        force: true,
        ..Default::default()
    }
}

fn namespace(object: &Value) -> String {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string()
}

pub(super) fn apply(sim: &Sim, m: &Manifest) -> Result<(), String> {
    let api_version = m.object["apiVersion"].as_str().unwrap_or_default();
    let kind = m.object["kind"].as_str().unwrap_or_default();
    let (group, version, plural) =
        scenario::resource_type(api_version, kind).ok_or_else(|| format!("unknown kind {kind}"))?;
    let rt = sim
        .store()
        .resolve(&group, &version, &plural)
        .ok_or_else(|| format!("the sim does not serve {kind}"))?;
    let name = m.object["metadata"]["name"].as_str().unwrap_or_default();
    let ns = if rt.namespaced {
        namespace(&m.object)
    } else {
        String::new()
    };
    sim.store()
        .patch(
            &rt,
            &ns,
            name,
            PatchKind::Apply,
            &m.object,
            Subresource::Main,
            &opts(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn kind_type(sim: &Sim, kind: &str) -> Option<Arc<crate::sim::resources::ResourceType>> {
    sim.store()
        .types()
        .into_iter()
        .find(|t| t.kind == kind && t.group != "events.k8s.io")
}

fn merge(sim: &Sim, kind: &str, name: &str, patch: &Value) -> Result<(), String> {
    let rt = kind_type(sim, kind).ok_or_else(|| format!("unknown kind {kind}"))?;
    sim.store()
        .patch(
            &rt,
            if rt.namespaced { "default" } else { "" },
            name,
            PatchKind::Merge,
            patch,
            Subresource::Main,
            &opts(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Carries out a scenario action; returns what the timeline says of it.
pub(super) fn perform(sim: &Sim, action: &Action) -> String {
    let (description, result) = match action {
        Action::Apply(manifests) => {
            let names: Vec<String> = manifests
                .iter()
                .map(|m| {
                    format!(
                        "{}/{}",
                        m.object["kind"].as_str().unwrap_or_default(),
                        m.object["metadata"]["name"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            let result = manifests.iter().try_for_each(|m| apply(sim, m));
            (format!("apply {}", names.join(", ")), result)
        }
        Action::SetImage(s) => {
            let result = set_image(sim, s);
            (format!("set image of {} to {}", s.rollout, s.image), result)
        }
        Action::Annotate { rollout, key } => {
            let value = sim.store().current_rv().to_string();
            let patch = json!({"metadata": {"annotations": {*key: value}}});
            let verb = key.trim_start_matches("cutover.dev/");
            (
                format!("{verb} {rollout}"),
                merge(sim, "Rollout", rollout, &patch),
            )
        }
        Action::Scale(s) => (
            format!("scale {} to {}", s.rollout, s.replicas),
            merge(
                sim,
                "Rollout",
                &s.rollout,
                &json!({"spec": {"replicas": s.replicas}}),
            ),
        ),
        Action::Patch(p) => (
            format!("patch {}/{}", p.kind, p.name),
            merge(sim, &p.kind, &p.name, &p.patch),
        ),
        Action::Delete(d) => {
            let result = kind_type(sim, &d.kind)
                .ok_or_else(|| format!("unknown kind {}", d.kind))
                .and_then(|rt| {
                    sim.store()
                        .delete(
                            &rt,
                            "default",
                            &d.name,
                            crate::sim::store::Propagation::Background,
                            None,
                        )
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                });
            (format!("delete {}/{}", d.kind, d.name), result)
        }
    };
    match result {
        Ok(()) => description,
        Err(e) => format!("{description} FAILED: {e}"),
    }
}

fn set_image(sim: &Sim, s: &scenario::SetImage) -> Result<(), String> {
    let rt = kind_type(sim, "Rollout").ok_or("Rollouts are not served")?;
    let current = sim
        .store()
        .get(&rt, "default", &s.rollout)
        .map_err(|e| e.to_string())?;
    let containers = current
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .ok_or("the Rollout has no spec.template (workloadRef Rollouts change their Deployment)")?;
    let mut containers = containers;
    let index = match &s.container {
        Some(name) => containers
            .iter()
            .position(|c| c["name"].as_str() == Some(name))
            .ok_or_else(|| format!("no container {name:?}"))?,
        None => 0,
    };
    let Some(container) = containers.get_mut(index) else {
        return Err("the template has no container".into());
    };
    container["image"] = json!(s.image);
    let mut patch = json!({"spec": {"template": {"spec": {"containers": containers}}}});
    if let Some(a) = &s.pod_annotations {
        patch["spec"]["template"]["metadata"] = json!({"annotations": a});
    }
    merge(sim, "Rollout", &s.rollout, &patch)
}
