//! The HTTPRoute a routed canary shifts: which backendRefs are ours, their weights, the
//! patch that sets them, and whether the gateway has taken the route as it is now.

use kube::{
    Api, ResourceExt,
    api::{DynamicObject, Patch, PatchParams},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::{Value, json};

use crate::{
    api::RouteKind,
    controller::{Context, Error},
};

/// A kind of Gateway API's `gateway.networking.k8s.io/v1` as an API resource.
pub fn gateway_api_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind),
        plural,
    )
}

/// A Gateway API route kind (HTTPRoute or GRPCRoute) as an API resource.
pub fn route_resource(kind: RouteKind) -> ApiResource {
    gateway_api_resource(kind.kind(), kind.plural())
}

/// (rule index, ref index, is the canary Service, weight) of the backendRefs naming the
/// stable or canary Service.
pub fn route_refs(
    data: &Value,
    stable: Option<&str>,
    canary: Option<&str>,
) -> Vec<(usize, usize, bool, i32)> {
    let mut out = Vec::new();
    for (ri, rule) in data
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        // Header and mirror rules keep their own backends: no weight of theirs moves.
        if super::route_rules::is_managed(rule) {
            continue;
        }
        for (bi, backend) in rule
            .get("backendRefs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let name = backend.get("name").and_then(Value::as_str);
            let weight = backend.get("weight").and_then(Value::as_i64).unwrap_or(1) as i32;
            if name.is_some() && name == canary {
                out.push((ri, bi, true, weight));
            } else if name.is_some() && name == stable {
                out.push((ri, bi, false, weight));
            }
        }
    }
    out
}

/// The canary's share of the weights of `refs`, in percent.
pub fn route_canary_weight(refs: &[(usize, usize, bool, i32)]) -> i32 {
    let canary: i32 = refs.iter().filter(|r| r.2).map(|r| r.3).sum();
    let total: i32 = refs.iter().map(|r| r.3).sum();
    if total == 0 {
        0
    } else {
        (f64::from(canary) * 100.0 / f64::from(total)).round() as i32
    }
}

/// Sets the weights of only the backendRefs naming our Services, with a JSON patch whose
/// `test` operations fail (409-like) if someone reordered the route meanwhile — other rules
/// and fields of the user's route stay untouched (which server-side apply on its atomic rule
/// list could not promise).
pub async fn set_route_weight(
    ctx: &Context,
    ns: &str,
    kind: RouteKind,
    route: &DynamicObject,
    stable: Option<&str>,
    canary: Option<&str>,
    weight: i32,
) -> Result<DynamicObject, Error> {
    let mut ops = Vec::new();
    for (ri, bi, is_canary, _) in route_refs(&route.data, stable, canary) {
        let name = if is_canary { canary } else { stable };
        ops.push(json!({"op": "test", "path": format!("/spec/rules/{ri}/backendRefs/{bi}/name"), "value": name}));
        let w = if is_canary { weight } else { 100 - weight };
        ops.push(json!({"op": "add", "path": format!("/spec/rules/{ri}/backendRefs/{bi}/weight"), "value": w}));
    }
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops))?;
    let routes: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), ns, &route_resource(kind));
    Ok(routes
        .patch(
            &route.name_any(),
            &PatchParams::default(),
            &Patch::<()>::Json(patch),
        )
        .await?)
}

/// Replaces cutover's header and mirror rules on `route` with `rules`, by a JSON patch
/// that leaves the author's rules alone; returns the route as written (or as it was, when
/// nothing differs).
pub async fn set_route_rules(
    client: &kube::Client,
    ns: &str,
    kind: RouteKind,
    route: &DynamicObject,
    rules: &[Value],
) -> Result<Option<DynamicObject>, Error> {
    let body = serde_json::to_value(route)?;
    let Some(ops) = super::route_rules::rules_patch(&body, rules) else {
        return Ok(None);
    };
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops))?;
    let routes: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &route_resource(kind));
    Ok(Some(
        routes
            .patch(
                &route.name_any(),
                &PatchParams::default(),
                &Patch::<()>::Json(patch),
            )
            .await?,
    ))
}

/// Why the weights written on `route` (its body; its `generation` is in its metadata) may
/// not be what the gateway routes by yet, or `None` once every parent that reports on the
/// route has accepted its current generation and resolved its backends. A route no gateway reports on (no `status.parents`) is taken as
/// written: there is no one to wait for.
pub fn pending(route: &Value, generation: Option<i64>) -> Option<String> {
    let parents = route.pointer("/status/parents").and_then(Value::as_array)?;
    for parent in parents {
        let name = parent
            .pointer("/parentRef/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let conditions = parent
            .get("conditions")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for wanted in ["Accepted", "ResolvedRefs"] {
            let Some(c) = conditions
                .iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(wanted))
            else {
                return Some(format!("gateway {name:?} has not reported {wanted} yet"));
            };
            let observed = c.get("observedGeneration").and_then(Value::as_i64);
            if let (Some(observed), Some(generation)) = (observed, generation)
                && observed < generation
            {
                return Some(format!(
                    "gateway {name:?} has not seen generation {generation} of the route yet"
                ));
            }
            if c.get("status").and_then(Value::as_str) != Some("True") {
                let reason = c.get("reason").and_then(Value::as_str).unwrap_or("");
                let message = c.get("message").and_then(Value::as_str).unwrap_or("");
                return Some(
                    format!("gateway {name:?}: {wanted} is not True ({reason}: {message})")
                        .trim_end_matches(" (: )")
                        .to_string(),
                );
            }
        }
    }
    None
}

/// The Gateway API feature a gateway lists when it implements `RequestMirror` on HTTPRoutes.
pub const MIRROR_FEATURE: &str = "HTTPRouteRequestMirror";

/// A gateway the route is attached to, with what its GatewayClass says it supports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentSupport {
    /// The Gateway's name.
    pub gateway: String,
    /// Its GatewayClass.
    pub class: String,
    /// The class's `status.supportedFeatures`; `None` when it publishes none.
    pub features: Option<Vec<String>>,
}

/// The features a GatewayClass publishes in `status.supportedFeatures` (objects with a
/// `name` since Gateway API 1.2, plain names before), or `None` when it publishes none.
pub fn supported_features(class: &Value) -> Option<Vec<String>> {
    let list = class
        .pointer("/status/supportedFeatures")
        .and_then(Value::as_array)?;
    let names: Vec<String> = list
        .iter()
        .filter_map(|f| f.as_str().or_else(|| f.get("name")?.as_str()))
        .map(str::to_string)
        .collect();
    (!names.is_empty()).then_some(names)
}

/// Why `feature` cannot be used on the route: the first of its gateways whose class lists
/// its supported features without it. A class that lists none may still support it, and a
/// gateway that could not be read is not held against the route.
pub fn lacking(parents: &[ParentSupport], feature: &str) -> Option<String> {
    parents.iter().find_map(|p| {
        let features = p.features.as_ref()?;
        (!features.iter().any(|f| f == feature)).then(|| {
            format!(
                "gateway {:?} (GatewayClass {:?}) does not list {feature} among its supported features",
                p.gateway, p.class
            )
        })
    })
}

/// The route's parent Gateways and what their classes support, as far as they can be read
/// (a Gateway or class that is missing or forbidden is left out, and logged).
pub async fn parent_support(client: &kube::Client, ns: &str, route: &Value) -> Vec<ParentSupport> {
    use crate::{
        cli::lint::{is_dns_label, is_dns_subdomain},
        controller::cache::by_name,
    };
    let kind = gateway_api_resource;
    let mut out = Vec::new();
    let parents = route
        .pointer("/spec/parentRefs")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for parent in parents {
        let group = parent
            .get("group")
            .and_then(Value::as_str)
            .unwrap_or("gateway.networking.k8s.io");
        let is_gateway = parent
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("Gateway")
            == "Gateway";
        let Some(name) = parent.get("name").and_then(Value::as_str) else {
            continue;
        };
        if group != "gateway.networking.k8s.io" || !is_gateway {
            continue;
        }
        let gateway_ns = parent
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or(ns);
        // The route's author wrote these: only names the API server could hold go into a
        // request's path or field selector.
        if !is_dns_subdomain(name) || !is_dns_label(gateway_ns) {
            continue;
        }
        let gateways: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), gateway_ns, &kind("Gateway", "gateways"));
        let class = match by_name(&gateways, name).await {
            Ok(Some(g)) => g
                .data
                .pointer("/spec/gatewayClassName")
                .and_then(Value::as_str)
                .map(str::to_string),
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(gateway = name, namespace = gateway_ns, error = %e, "gateway not read");
                None
            }
        };
        let Some(class) = class.filter(|c| is_dns_subdomain(c)) else {
            continue;
        };
        let classes: Api<DynamicObject> =
            Api::all_with(client.clone(), &kind("GatewayClass", "gatewayclasses"));
        match by_name(&classes, &class).await {
            Ok(Some(c)) => out.push(ParentSupport {
                gateway: name.to_string(),
                class,
                features: supported_features(&c.data),
            }),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(class = %class, error = %e, "gateway class not read");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(generation: i64, parents: Value) -> Value {
        json!({"metadata": {"generation": generation}, "status": {"parents": parents}})
    }

    /// As the shell calls it: the body, and the generation from the metadata.
    fn check(route: &Value) -> Option<String> {
        pending(
            route,
            route
                .pointer("/metadata/generation")
                .and_then(Value::as_i64),
        )
    }

    fn cond(kind: &str, status: &str, observed: i64) -> Value {
        json!({"type": kind, "status": status, "observedGeneration": observed, "reason": "R", "message": "m"})
    }

    #[test]
    fn a_route_no_gateway_reports_on_is_taken_as_written() {
        assert_eq!(check(&json!({"metadata": {"generation": 3}})), None);
        assert_eq!(check(&route(3, json!([]))), None);
    }

    #[test]
    fn accepted_and_resolved_for_the_current_generation_is_applied() {
        let r = route(
            4,
            json!([{"parentRef": {"name": "gw"}, "conditions": [cond("Accepted", "True", 4), cond("ResolvedRefs", "True", 4)]}]),
        );
        assert_eq!(check(&r), None);
    }

    #[test]
    fn a_gateway_behind_the_route_generation_is_waited_for() {
        let r = route(
            5,
            json!([{"parentRef": {"name": "gw"}, "conditions": [cond("Accepted", "True", 4), cond("ResolvedRefs", "True", 4)]}]),
        );
        assert!(check(&r).is_some_and(|m| m.contains("generation 5")));
    }

    #[test]
    fn unresolved_backends_are_named() {
        let r = route(
            2,
            json!([{"parentRef": {"name": "gw"}, "conditions": [cond("Accepted", "True", 2), cond("ResolvedRefs", "False", 2)]}]),
        );
        let why = check(&r).unwrap_or_default();
        assert!(why.contains("ResolvedRefs is not True (R: m)"), "{why}");
    }

    #[test]
    fn every_parent_must_agree() {
        let r = route(
            2,
            json!([
                {"parentRef": {"name": "a"}, "conditions": [cond("Accepted", "True", 2), cond("ResolvedRefs", "True", 2)]},
                {"parentRef": {"name": "b"}, "conditions": [cond("Accepted", "False", 2), cond("ResolvedRefs", "True", 2)]}
            ]),
        );
        assert!(check(&r).is_some_and(|m| m.contains("\"b\"") && m.contains("Accepted")));
    }

    #[test]
    fn a_parent_without_conditions_is_not_there_yet() {
        let r = route(1, json!([{"parentRef": {"name": "gw"}}]));
        assert!(check(&r).is_some_and(|m| m.contains("Accepted")));
    }

    #[test]
    fn header_and_mirror_rules_keep_their_backends() {
        let data = json!({"spec": {"rules": [
            {"name": "cutover-header-beta", "backendRefs": [{"name": "canary", "weight": 1}]},
            {"backendRefs": [{"name": "stable", "weight": 80}, {"name": "canary", "weight": 20}]}
        ]}});
        let refs = route_refs(&data, Some("stable"), Some("canary"));
        assert_eq!(refs, [(1, 0, false, 80), (1, 1, true, 20)]);
        assert_eq!(route_canary_weight(&refs), 20);
    }

    #[test]
    fn weights_are_read_from_our_refs_only() {
        let data = json!({"spec": {"rules": [
            {"backendRefs": [{"name": "stable", "weight": 75}, {"name": "canary", "weight": 25}, {"name": "other", "weight": 900}]}
        ]}});
        let refs = route_refs(&data, Some("stable"), Some("canary"));
        assert_eq!(refs.len(), 2);
        assert_eq!(route_canary_weight(&refs), 25);
    }

    fn parent(features: Option<&[&str]>) -> ParentSupport {
        ParentSupport {
            gateway: "public".into(),
            class: "traefik".into(),
            features: features.map(|f| f.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn supported_features_are_read_in_both_published_forms() {
        let objects = json!({"status": {"supportedFeatures": [{"name": "HTTPRoute"}, {"name": MIRROR_FEATURE}]}});
        assert_eq!(
            supported_features(&objects),
            Some(vec!["HTTPRoute".to_string(), MIRROR_FEATURE.to_string()])
        );
        let names = json!({"status": {"supportedFeatures": ["HTTPRoute"]}});
        assert_eq!(
            supported_features(&names),
            Some(vec!["HTTPRoute".to_string()])
        );
        assert_eq!(supported_features(&json!({"status": {}})), None);
        assert_eq!(
            supported_features(&json!({"status": {"supportedFeatures": []}})),
            None
        );
    }

    #[test]
    fn a_feature_is_lacking_only_where_a_class_lists_features_without_it() {
        assert_eq!(lacking(&[], MIRROR_FEATURE), None);
        assert_eq!(lacking(&[parent(None)], MIRROR_FEATURE), None);
        assert_eq!(
            lacking(
                &[parent(Some(&["HTTPRoute", MIRROR_FEATURE]))],
                MIRROR_FEATURE
            ),
            None
        );
        let why = lacking(
            &[parent(None), parent(Some(&["HTTPRoute"]))],
            MIRROR_FEATURE,
        )
        .expect("lacking");
        assert!(
            why.contains("\"public\"")
                && why.contains("\"traefik\"")
                && why.contains(MIRROR_FEATURE),
            "{why}"
        );
    }
}
