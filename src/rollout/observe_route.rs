//! The route a routed canary shifts, as the Rollout controller reads it before it plans: its
//! kind and body, the canary's weight on it, the gateway's verdict, cutover's own rules,
//! and whether its gateways can mirror.

use kube::{Api, api::DynamicObject};

use super::{
    plan::RouteRulesObserved,
    reconcile::Reads,
    route::{self, MIRROR_FEATURE},
    route_rules,
};
use crate::{
    api::{CanaryStrategy, Rollout, RouteKind},
    controller::{Context, Error},
};

/// The route as observed (all empty when the canary has no router).
pub(super) struct RouteSeen {
    /// The route's kind.
    pub kind: RouteKind,
    /// The route, when it exists.
    pub route: Option<DynamicObject>,
    /// The canary's weight on it.
    pub weight: Option<i32>,
    /// Why the gateway may not route by it yet (`route::pending`).
    pub pending: Option<String>,
    /// The rules the plan works from.
    pub rules: RouteRulesObserved,
}

/// Reads the canary's route from its watch cache, naming in `problems` a route that is
/// missing or sends nothing to the canary Service.
pub(super) async fn observe(
    ctx: &Context,
    reads: &Reads,
    owner: &str,
    ns: &str,
    canary: &CanaryStrategy,
    problems: &mut Vec<String>,
) -> Result<RouteSeen, Error> {
    let (kind, name) = canary
        .traffic_routing
        .as_ref()
        .map_or((RouteKind::Http, ""), |t| t.gateway_api.route());
    let mut seen = RouteSeen {
        kind,
        route: None,
        weight: None,
        pending: None,
        rules: RouteRulesObserved::default(),
    };
    if canary.traffic_routing.is_none() {
        return Ok(seen);
    }
    let routes: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), ns, &route::route_resource(kind));
    let found = match reads.route_cache(kind) {
        Some(cache) => cache.get(&routes, owner, ns, name).await?,
        None => crate::controller::cache::by_name(&routes, name).await?,
    };
    let Some(r) = found else {
        problems.push(format!(
            "{} {name:?} does not exist in namespace {ns:?}",
            kind.kind()
        ));
        return Ok(seen);
    };
    let refs = route::route_refs(
        &r.data,
        canary.stable_service.as_deref(),
        canary.canary_service.as_deref(),
    );
    if refs.iter().all(|(_, _, is_canary, _)| !is_canary) {
        problems.push(format!(
            "{} {name:?} has no backendRef to the canary Service",
            kind.kind()
        ));
    }
    seen.weight = Some(route::route_canary_weight(&refs));
    seen.pending = route::pending(&r.data, r.metadata.generation);
    seen.rules = RouteRulesObserved {
        base: canary
            .stable_service
            .as_deref()
            .and_then(|s| route_rules::base_rule(&r.data, s))
            .cloned(),
        managed: route_rules::managed_rules(&r.data),
        mirror_refused: None,
    };
    seen.route = Some(r);
    Ok(seen)
}

/// Why a mirror route must not be written to `route`, asked only when it matters: the
/// canary sets a mirror, none is in the route yet, and a release is under way (the stable
/// revision is not `target`). A gateway that cannot mirror may still accept the route and
/// answer the mirror rule's requests with errors.
pub(super) async fn mirror_refused(
    ctx: &Context,
    ns: &str,
    rollout: &Rollout,
    canary: &CanaryStrategy,
    route: Option<&DynamicObject>,
    rules: &RouteRulesObserved,
    target: &str,
) -> Option<String> {
    let route = route?;
    let stable = rollout
        .status
        .as_ref()
        .and_then(|s| s.stable_revision.as_deref());
    if !route_rules::sets_mirror(canary)
        || rules.managed.iter().any(route_rules::is_mirror)
        || stable == Some(target)
    {
        return None;
    }
    let parents = route::parent_support(&ctx.client, ns, &route.data).await;
    route::lacking(&parents, MIRROR_FEATURE)
}
