//! Header and mirror routes a canary adds to its HTTPRoute: which are in force after a
//! step, the rules they become, and the JSON patch that swaps cutover's rules for the ones
//! wanted while every rule of the route's author stays as written.
//!
//! cutover's rules are named `cutover-header-<name>` and `cutover-mirror-<name>` and sit
//! first in the route: a mirror matching what the author's rule matches must come first to
//! take precedence (Gateway API breaks ties by rule order).

use serde_json::{Map, Value, json};

use crate::api::{CanaryStrategy, HeaderMatch, RouteKind, StepAction};

/// Prefix of the names of the rules cutover writes.
pub const RULE_PREFIX: &str = "cutover-";

/// A route cutover keeps on the HTTPRoute while a canary runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManagedRoute {
    /// Requests carrying these headers go to the canary.
    Header {
        /// Step-given name.
        name: String,
        /// Headers a request must all carry.
        matches: Vec<HeaderMatch>,
    },
    /// A share of requests (with these headers, if any) is copied to the canary.
    Mirror {
        /// Step-given name.
        name: String,
        /// Percentage mirrored.
        percent: i32,
        /// Headers a request must all carry to be mirrored.
        matches: Vec<HeaderMatch>,
    },
}

impl ManagedRoute {
    /// Its rule's name in the HTTPRoute.
    pub fn rule_name(&self) -> String {
        match self {
            ManagedRoute::Header { name, .. } => format!("{RULE_PREFIX}header-{name}"),
            ManagedRoute::Mirror { name, .. } => format!("{RULE_PREFIX}mirror-{name}"),
        }
    }
}

/// The routes in force after steps `0..through`: each set by a step (a later step of the
/// same name replaces it, one with only the name removes it), header routes first, each
/// kind in the order first set.
pub fn routes_through(canary: &CanaryStrategy, through: usize) -> Vec<ManagedRoute> {
    let mut routes: Vec<ManagedRoute> = Vec::new();
    for step in &canary.steps[..through.min(canary.steps.len())] {
        let (key, wanted) = match step.action() {
            Some(StepAction::SetHeaderRoute(h)) => (
                ManagedRoute::Header {
                    name: h.name.clone(),
                    matches: Vec::new(),
                }
                .rule_name(),
                (!h.matches.is_empty()).then(|| ManagedRoute::Header {
                    name: h.name.clone(),
                    matches: h.matches.clone(),
                }),
            ),
            Some(StepAction::SetMirrorRoute(m)) => (
                ManagedRoute::Mirror {
                    name: m.name.clone(),
                    percent: 0,
                    matches: Vec::new(),
                }
                .rule_name(),
                (m.percentage.is_some() || !m.matches.is_empty()).then(|| ManagedRoute::Mirror {
                    name: m.name.clone(),
                    percent: m.percentage.unwrap_or(100).clamp(1, 100),
                    matches: m.matches.clone(),
                }),
            ),
            _ => continue,
        };
        let at = routes.iter().position(|r| r.rule_name() == key);
        match (at, wanted) {
            (Some(i), Some(route)) => routes[i] = route,
            (Some(i), None) => {
                routes.remove(i);
            }
            (None, Some(route)) => routes.push(route),
            (None, None) => {}
        }
    }
    routes.sort_by_key(|r| matches!(r, ManagedRoute::Mirror { .. }));
    routes
}

/// Whether a rule of the route is one cutover wrote.
pub fn is_managed(rule: &Value) -> bool {
    rule.get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| n.starts_with(RULE_PREFIX))
}

/// Whether `rule` is one of cutover's mirror rules.
pub fn is_mirror(rule: &Value) -> bool {
    rule.get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| n.starts_with(&format!("{RULE_PREFIX}mirror-")))
}

/// Whether any step of the canary sets a mirror route (rather than only removing one).
pub fn sets_mirror(canary: &CanaryStrategy) -> bool {
    canary.steps.iter().any(|s| {
        matches!(s.action(), Some(StepAction::SetMirrorRoute(m)) if m.percentage.is_some() || !m.matches.is_empty())
    })
}

/// The author's rule the canary's routes are made from: the first one (not cutover's) with
/// a backendRef to the stable Service.
pub fn base_rule<'a>(route: &'a Value, stable: &str) -> Option<&'a Value> {
    rules(route).iter().find(|rule| {
        !is_managed(rule)
            && rule
                .get("backendRefs")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter()
                        .any(|b| b.get("name").and_then(Value::as_str) == Some(stable))
                })
    })
}

/// cutover's rules as the route holds them, in order.
pub fn managed_rules(route: &Value) -> Vec<Value> {
    rules(route)
        .iter()
        .filter(|r| is_managed(r))
        .cloned()
        .collect()
}

fn rules(route: &Value) -> &[Value] {
    route
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// A backendRef as the apiserver stores it (Gateway API's defaults written out, so that
/// what is read back equals what was written).
fn backend(name: &str, port: Option<&Value>, weight: Option<i64>) -> Value {
    let mut b = Map::new();
    b.insert("group".into(), json!(""));
    b.insert("kind".into(), json!("Service"));
    b.insert("name".into(), json!(name));
    if let Some(port) = port {
        b.insert("port".into(), port.clone());
    }
    if let Some(weight) = weight {
        b.insert("weight".into(), json!(weight));
    }
    Value::Object(b)
}

/// A header match in Gateway API's form; a prefix becomes an anchored expression.
fn header(m: &HeaderMatch) -> Value {
    let v = &m.header_value;
    let (kind, value) = match (&v.exact, &v.prefix, &v.regex) {
        (Some(exact), _, _) => ("Exact", exact.clone()),
        (None, Some(prefix), _) => ("RegularExpression", format!("^{}.*", regex::escape(prefix))),
        (None, None, Some(re)) => ("RegularExpression", re.clone()),
        (None, None, None) => ("Exact", String::new()),
    };
    json!({"type": kind, "name": m.header_name, "value": value})
}

/// The base rule's matches, each with the headers added (an HTTPRoute rule without
/// matches matches every path, as the apiserver's default says; a GRPCRoute rule without
/// matches, every method, with no default written).
fn matches_with(kind: RouteKind, base: &Value, headers: &[HeaderMatch]) -> Value {
    let default = match kind {
        RouteKind::Http => vec![json!({"path": {"type": "PathPrefix", "value": "/"}})],
        RouteKind::Grpc => vec![json!({})],
    };
    let base_matches = base
        .get("matches")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .cloned()
        .unwrap_or(default);
    Value::Array(
        base_matches
            .into_iter()
            .map(|mut m| {
                if !headers.is_empty() {
                    let mut all = m
                        .get("headers")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    all.extend(headers.iter().map(header));
                    m["headers"] = Value::Array(all);
                }
                m
            })
            .collect(),
    )
}

/// The rules `routes` become on a route whose author's rule is `base`.
pub fn rules_for(
    kind: RouteKind,
    base: &Value,
    stable: &str,
    canary: &str,
    routes: &[ManagedRoute],
) -> Vec<Value> {
    let refs = base
        .get("backendRefs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let port_of = |service: &str| {
        refs.iter()
            .find(|b| b.get("name").and_then(Value::as_str) == Some(service))
            .and_then(|b| b.get("port"))
            .cloned()
    };
    let stable_port = port_of(stable);
    let canary_port = port_of(canary).or_else(|| stable_port.clone());
    // The author's filters apply to these requests too; a mirror of theirs is not copied.
    let filters: Vec<Value> = base
        .get("filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|f| f.get("type").and_then(Value::as_str) != Some("RequestMirror"))
        .cloned()
        .collect();
    routes
        .iter()
        .map(|route| {
            let mut rule = Map::new();
            rule.insert("name".into(), json!(route.rule_name()));
            match route {
                ManagedRoute::Header { matches, .. } => {
                    rule.insert("matches".into(), matches_with(kind, base, matches));
                    if !filters.is_empty() {
                        rule.insert("filters".into(), Value::Array(filters.clone()));
                    }
                    rule.insert(
                        "backendRefs".into(),
                        json!([backend(canary, canary_port.as_ref(), Some(1))]),
                    );
                }
                ManagedRoute::Mirror {
                    percent, matches, ..
                } => {
                    rule.insert("matches".into(), matches_with(kind, base, matches));
                    let mut all = filters.clone();
                    all.push(json!({"type": "RequestMirror", "requestMirror": {
                        "backendRef": backend(canary, canary_port.as_ref(), None),
                        "percent": percent}}));
                    rule.insert("filters".into(), Value::Array(all));
                    rule.insert(
                        "backendRefs".into(),
                        json!([backend(stable, stable_port.as_ref(), Some(1))]),
                    );
                }
            }
            Value::Object(rule)
        })
        .collect()
}

/// The JSON patch that replaces cutover's rules on `route` by `wanted` (first in the
/// route), or `None` when they are already so. Each rule removed is first tested by name,
/// so a route reordered meanwhile fails the patch rather than losing an author's rule.
pub fn rules_patch(route: &Value, wanted: &[Value]) -> Option<Vec<Value>> {
    let all = rules(route);
    let ours: Vec<(usize, &Value)> = all
        .iter()
        .enumerate()
        .filter(|(_, r)| is_managed(r))
        .collect();
    let in_place = ours.len() == wanted.len()
        && ours
            .iter()
            .enumerate()
            .all(|(i, (at, rule))| *at == i && *rule == &wanted[i]);
    if in_place {
        return None;
    }
    let mut ops = Vec::new();
    if all.is_empty() && route.pointer("/spec/rules").is_none() {
        ops.push(json!({"op": "add", "path": "/spec/rules", "value": []}));
    }
    for (at, rule) in ours.iter().rev() {
        ops.push(
            json!({"op": "test", "path": format!("/spec/rules/{at}/name"), "value": rule["name"]}),
        );
        ops.push(json!({"op": "remove", "path": format!("/spec/rules/{at}")}));
    }
    for (i, rule) in wanted.iter().enumerate() {
        ops.push(json!({"op": "add", "path": format!("/spec/rules/{i}"), "value": rule}));
    }
    Some(ops)
}

#[cfg(test)]
#[path = "route_rules_tests.rs"]
mod tests;
