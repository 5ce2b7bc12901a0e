//! Semantic rules the controllers enforce beyond the CRD schema: rules that need parsing
//! (CEL conditions, query templates, durations) or that the API server cannot see.
//!
//! A Rollout, MigrationJob or FeatureFlag that breaks one gets an `InvalidSpec` condition
//! and no action; `cutover lint` reports the same problems before anything is applied.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::openapi::{FieldError, FieldErrorKind};
use super::{AnalysisSpec, FeatureFlagSpec, MigrationJobSpec, RolloutSpec, StepAction};
use crate::analysis::{condition, template};

/// Shortest interval between measurements.
pub const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

fn invalid(path: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError::new(path, FieldErrorKind::Invalid, message)
}

/// Problems in a Rollout spec; empty when the controller can act on it.
pub fn rollout(spec: &RolloutSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    windows(&spec.windows, &mut errors);
    match (&spec.template, &spec.workload_ref) {
        (Some(_), Some(_)) | (None, None) => {
            errors.push(invalid(
                "spec",
                "exactly one of spec.template or spec.workloadRef must be set",
            ));
        }
        (Some(template), None) => check_selector(spec, template, &mut errors),
        (None, Some(_)) => {}
    }
    if spec.strategy_kind().is_none() {
        errors.push(invalid(
            "spec.strategy",
            "exactly one strategy must be set: canary, blueGreen or rolling",
        ));
    }
    if let Some(canary) = &spec.strategy.canary {
        for (i, step) in canary.steps.iter().enumerate() {
            let path = format!("spec.strategy.canary.steps[{i}]");
            if let Some(scale) = &step.set_canary_scale
                && scale.scale().is_none()
            {
                errors.push(invalid(
                    format!("{path}.setCanaryScale"),
                    "setCanaryScale sets exactly one of replicas, weight or matchTrafficWeight: true",
                ));
                continue;
            }
            match step.action() {
                None => errors.push(invalid(
                    &path,
                    "a step sets exactly one of setWeight, pause, analysis, setCanaryScale, setHeaderRoute or setMirrorRoute",
                )),
                Some(StepAction::SetHeaderRoute(crate::api::SetHeaderRoute { matches, .. }))
                | Some(StepAction::SetMirrorRoute(crate::api::SetMirrorRoute { matches, .. })) => {
                    let key = if step.set_header_route.is_some() {
                        "setHeaderRoute"
                    } else {
                        "setMirrorRoute"
                    };
                    let routing = canary.traffic_routing.as_ref();
                    if routing.is_none() {
                        errors.push(invalid(
                            format!("{path}.{key}"),
                            "setHeaderRoute and setMirrorRoute need trafficRouting: they are rules of its route",
                        ));
                    }
                    if step.set_mirror_route.is_some()
                        && routing.is_some_and(|t| t.gateway_api.route().0 == crate::api::RouteKind::Grpc)
                    {
                        errors.push(invalid(
                            format!("{path}.setMirrorRoute"),
                            "setMirrorRoute needs an httpRoute: Gateway API names no feature by which a gateway says it mirrors gRPC",
                        ));
                    }
                    header_matches(matches, &format!("{path}.{key}.match"), &mut errors);
                }
                Some(StepAction::SetCanaryScale(scale)) => {
                    if canary.traffic_routing.is_none() {
                        errors.push(invalid(
                            format!("{path}.setCanaryScale"),
                            "setCanaryScale needs trafficRouting: without a router the canary's share of traffic is its share of pods",
                        ));
                    }
                    match scale {
                        crate::api::CanaryScale::Replicas(n) if n < 0 => errors.push(invalid(
                            format!("{path}.setCanaryScale.replicas"),
                            format!("{n} is not a number of pods"),
                        )),
                        crate::api::CanaryScale::Weight(w) if !(0..=100).contains(&w) => errors
                            .push(invalid(
                                format!("{path}.setCanaryScale.weight"),
                                format!("{w} is not a percentage from 0 to 100"),
                            )),
                        _ => {}
                    }
                }
                Some(StepAction::SetWeight(w)) if !(0..=100).contains(&w) => {
                    errors.push(invalid(
                        format!("{path}.setWeight"),
                        format!("{w} is not a percentage from 0 to 100"),
                    ));
                }
                Some(StepAction::Analysis(a)) => {
                    analysis(a, &format!("{path}.analysis"), &mut errors)
                }
                Some(_) => {}
            }
        }
        if let Some(bg) = &canary.analysis {
            analysis(&bg.spec, "spec.strategy.canary.analysis", &mut errors);
            let start = bg.starting_step.unwrap_or(0);
            if start < 0 || (start as usize) > canary.steps.len() {
                errors.push(invalid(
                    "spec.strategy.canary.analysis.startingStep",
                    format!(
                        "{start} is past the last step ({} steps)",
                        canary.steps.len()
                    ),
                ));
            }
        }
    }
    if let Some(bg) = &spec.strategy.blue_green {
        if bg.preview_service.as_deref() == Some(bg.active_service.as_str()) {
            errors.push(invalid(
                "spec.strategy.blueGreen.previewService",
                "activeService and previewService must differ",
            ));
        }
        if let Some(a) = &bg.pre_promotion_analysis {
            analysis(
                a,
                "spec.strategy.blueGreen.prePromotionAnalysis",
                &mut errors,
            );
        }
        if let Some(a) = &bg.post_promotion_analysis {
            analysis(
                a,
                "spec.strategy.blueGreen.postPromotionAnalysis",
                &mut errors,
            );
        }
    }
    if let Some(rolling) = &spec.strategy.rolling {
        let base = "spec.strategy.rolling";
        if let Some(size) = &rolling.batch_size
            && let Err(m) = count_or_percent(size, false)
        {
            errors.push(invalid(format!("{base}.batchSize"), m));
        }
        if let Some(max) = &rolling.max_unavailable
            && let Err(m) = count_or_percent(max, true)
        {
            errors.push(invalid(format!("{base}.maxUnavailable"), m));
        }
        if let Some(a) = &rolling.analysis {
            analysis(a, &format!("{base}.analysis"), &mut errors);
        }
    }
    if let Some(bake) = &spec.bake {
        bake_spec(spec, bake, &mut errors);
    }
    for (i, hook) in spec
        .notifications
        .iter()
        .flat_map(|n| n.webhooks.iter())
        .enumerate()
    {
        let unknown = hook
            .template
            .as_deref()
            .map(crate::notify::unknown_placeholders)
            .unwrap_or_default();
        if !unknown.is_empty() {
            errors.push(invalid(
                format!("spec.notifications.webhooks[{i}].template"),
                format!(
                    "unknown placeholder(s) {}: use {}",
                    unknown.join(", "),
                    crate::notify::TEMPLATE_FIELDS.join(", ")
                ),
            ));
        }
    }
    if let Some(m) = &spec.migrations {
        for name in m.before.iter().filter(|n| m.after.contains(n)) {
            errors.push(invalid(
                "spec.migrations",
                format!("{name:?} is listed in both before and after"),
            ));
        }
    }
    errors
}

fn check_selector(
    spec: &RolloutSpec,
    template: &k8s_openapi::api::core::v1::PodTemplateSpec,
    errors: &mut Vec<FieldError>,
) {
    let Some(selector) = &spec.selector else {
        errors.push(FieldError::new(
            "spec.selector",
            FieldErrorKind::Required,
            "Required value: a selector is needed with spec.template",
        ));
        return;
    };
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let match_labels = selector.match_labels.clone().unwrap_or_default();
    if match_labels.is_empty()
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
    {
        errors.push(invalid(
            "spec.selector",
            "empty selector would select every pod in the namespace",
        ));
    }
    for (key, value) in &match_labels {
        if labels.get(key) != Some(value) {
            errors.push(invalid(
                "spec.template.metadata.labels",
                format!("selector label {key}={value} is not in the template's labels"),
            ));
        }
    }
    match super::selector::matches(selector, &labels) {
        Err(e) => errors.push(invalid("spec.selector.matchExpressions", e)),
        // A label of matchLabels missing is reported above, one by one.
        Ok(false) if match_labels.iter().all(|(k, v)| labels.get(k) == Some(v)) => {
            errors.push(invalid(
                "spec.template.metadata.labels",
                format!(
                    "the template's labels do not match the selector's matchExpressions ({})",
                    super::selector::to_string(selector)
                ),
            ));
        }
        Ok(_) => {}
    }
}

/// A count (`3`) or percentage (`"25%"`); zero allowed only when `allow_zero`.
pub fn count_or_percent(value: &IntOrString, allow_zero: bool) -> Result<(), String> {
    let n = match value {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(s) => {
            let Some(digits) = s.strip_suffix('%') else {
                return Err(format!(
                    "{s:?} must be a count or a percentage like \"25%\""
                ));
            };
            let p: i64 = digits
                .parse()
                .map_err(|_| format!("{s:?} is not a percentage"))?;
            if p > 100 {
                return Err(format!("{s:?} is more than 100%"));
            }
            p
        }
    };
    match n {
        n if n < 0 => Err(format!("{n} must not be negative")),
        0 if !allow_zero => Err("must be at least 1".to_string()),
        _ => Ok(()),
    }
}

/// Problems in an analysis spec at `path`.
pub fn analysis(spec: &AnalysisSpec, path: &str, errors: &mut Vec<FieldError>) {
    if spec.metrics.is_empty() && spec.templates.is_empty() {
        errors.push(invalid(
            path,
            "an analysis needs metrics, templates or both",
        ));
    }
    let arg_names: Vec<&str> = spec.args.iter().map(|a| a.name.as_str()).collect();
    for (i, metric) in spec.metrics.iter().enumerate() {
        let mpath = format!("{path}.metrics[{i}]");
        if metric.interval().as_std() < MIN_INTERVAL {
            errors.push(invalid(format!("{mpath}.interval"), "must be at least 1s"));
        }
        for (field, expr) in [
            ("successCondition", &metric.success_condition),
            ("failureCondition", &metric.failure_condition),
        ] {
            if let Some(expr) = expr
                && let Err(e) = condition::check(expr)
            {
                errors.push(invalid(format!("{mpath}.{field}"), e.to_string()));
            }
        }
        let providers = [
            metric.prometheus.is_some(),
            metric.compare.is_some(),
            metric.web.is_some(),
            metric.job.is_some(),
        ];
        let queries = if providers.iter().filter(|p| **p).count() == 1 {
            metric.templated()
        } else {
            errors.push(invalid(
                &mpath,
                "exactly one provider must be set: prometheus, compare, web or job",
            ));
            Vec::new()
        };
        if let Some(w) = &metric.web {
            web(w, &mpath, errors);
        }
        if let Some(j) = &metric.job {
            job(metric, j, &mpath, errors);
        }
        if let Some(c) = &metric.compare {
            let window = c.window.map_or(600, |w| w.as_std().as_secs());
            let step = c.step.map_or(30, |s| s.as_std().as_secs()).max(1);
            let points = window / step;
            let min = u64::from(
                c.min_samples
                    .unwrap_or(crate::analysis::judge::DEFAULT_MIN_SAMPLES),
            );
            if points > 11_000 {
                errors.push(invalid(
                    format!("{mpath}.compare.window"),
                    format!("window/step gives {points} points; Prometheus returns at most 11000"),
                ));
            } else if points < min {
                errors.push(invalid(
                    format!("{mpath}.compare.window"),
                    format!("window/step gives {points} points, fewer than minSamples ({min}): the judge could never decide"),
                ));
            }
        }
        // With templates, args may come from them: resolution checks those placeholders.
        for (field, query) in queries.into_iter().filter(|_| spec.templates.is_empty()) {
            if let Err(e) = template::check(query, arg_names.iter().copied()) {
                errors.push(invalid(format!("{mpath}.{field}"), e.to_string()));
            }
        }
        if (metric.prometheus.is_some() || metric.web.is_some())
            && metric.success_condition.is_none()
            && metric.failure_condition.is_none()
        {
            errors.push(invalid(
                &mpath,
                "a prometheus or web metric needs successCondition or failureCondition",
            ));
        }
    }
}

/// Problems of a job metric that its schema cannot see.
fn job(metric: &super::Metric, j: &super::JobMetric, mpath: &str, errors: &mut Vec<FieldError>) {
    if metric.success_condition.is_some() || metric.failure_condition.is_some() {
        errors.push(invalid(
            mpath,
            "a job metric is decided by its Job (Complete or Failed) and takes no successCondition or failureCondition",
        ));
    }
    let pod = j.spec.template.spec.as_ref();
    if pod.is_none_or(|p| p.containers.is_empty()) {
        errors.push(invalid(
            format!("{mpath}.job.spec.template.spec.containers"),
            "a job metric's pod needs at least one container",
        ));
    }
    if pod.and_then(|p| p.restart_policy.as_deref()) == Some("Always") {
        errors.push(invalid(
            format!("{mpath}.job.spec.template.spec.restartPolicy"),
            "a job metric's restartPolicy must be Never or OnFailure",
        ));
    }
}

/// Problems of a web metric that its schema cannot see.
fn web(w: &super::WebMetric, mpath: &str, errors: &mut Vec<FieldError>) {
    // The allowlist is checked on the URL as written: a placeholder in the host would let
    // an arg send the request (and its headers) anywhere.
    let after_scheme = w.url.split_once("://").map_or("", |(_, rest)| rest);
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    if authority.contains("{{") {
        errors.push(invalid(
            format!("{mpath}.web.url"),
            "the host of a web URL cannot come from a placeholder; use placeholders in its path or query",
        ));
    }
    if w.body.is_some() && w.method != Some(super::WebMethod::Post) {
        errors.push(invalid(
            format!("{mpath}.web.body"),
            "body is sent only with method POST",
        ));
    }
    if !w.json_path.contains("{{")
        && let Err(e) = crate::analysis::resolve::json_path(&serde_json::Value::Null, &w.json_path)
        && !e.contains("names no field")
    {
        errors.push(invalid(format!("{mpath}.web.jsonPath"), e));
    }
    if let Some(t) = w.timeout
        && (t.as_std() < MIN_INTERVAL || t.as_std() > std::time::Duration::from_secs(60))
    {
        errors.push(invalid(
            format!("{mpath}.web.timeout"),
            "must be between 1s and 60s",
        ));
    }
}

/// Metric addresses written into a spec (`prometheus.address`, `compare.address`) whose
/// host the operator may not send requests to.
pub fn egress(
    spec: &impl serde::Serialize,
    allowed: &crate::controller::egress::Allowlist,
) -> Vec<FieldError> {
    let mut found = Vec::new();
    if let Ok(value) = serde_json::to_value(spec) {
        addresses(&value, "spec", &mut found);
    }
    found
        .into_iter()
        .filter_map(|(path, url)| {
            let what = format!("{url:?}");
            allowed
                .check(&what, &url)
                .err()
                .map(|e| invalid(path, e.to_string()))
        })
        .collect()
}

/// Collects `(path, address)` of every provider block in `value`.
fn addresses(value: &serde_json::Value, path: &str, found: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                let child_path = format!("{path}.{key}");
                if matches!(key.as_str(), "prometheus" | "compare")
                    && let Some(url) = child.get("address").and_then(|a| a.as_str())
                {
                    found.push((format!("{child_path}.address"), url.to_string()));
                }
                if key == "web"
                    && let Some(url) = child.get("url").and_then(|a| a.as_str())
                {
                    // Only the scheme and host matter here; the path may hold placeholders.
                    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
                    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
                    found.push((
                        format!("{child_path}.url"),
                        format!("{scheme}://{authority}/"),
                    ));
                }
                addresses(child, &child_path, found);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                addresses(item, &format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// The bake and verify windows: bounded, verify after bake, and a previous revision kept to
/// come back to.
fn bake_spec(spec: &RolloutSpec, bake: &super::Bake, errors: &mut Vec<FieldError>) {
    let max = crate::rollout::bake::MAX_BAKE_SECS;
    if bake.duration.as_secs() == 0 || bake.duration.as_secs() > max {
        errors.push(invalid(
            "spec.bake.duration",
            "a bake lasts from 1s to 168h",
        ));
    }
    if let Some(a) = &bake.analysis {
        analysis(a, "spec.bake.analysis", errors);
    }
    if let Some(v) = &bake.verify {
        if v.duration <= bake.duration || v.duration.as_secs() > max {
            errors.push(invalid(
                "spec.bake.verify.duration",
                "verify lasts longer than the bake, and at most 168h",
            ));
        }
        analysis(&v.analysis, "spec.bake.verify.analysis", errors);
    }
    if spec.revision_history_limit() == 0 {
        errors.push(invalid(
            "spec.revisionHistoryLimit",
            "a bake keeps the previous revision to restore: revisionHistoryLimit must be at least 1",
        ));
    }
}

/// Schedules, durations and time zones of `spec.windows`: one not understood would hold
/// changes for ever.
fn windows(windows: &[super::DeploymentWindow], errors: &mut Vec<FieldError>) {
    for (path, message) in crate::window::problems(windows, "spec.windows") {
        errors.push(invalid(path, message));
    }
}

/// Problems in a MigrationJob spec.
pub fn migration(spec: &MigrationJobSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    windows(&spec.windows, &mut errors);
    let check_template = |t: &k8s_openapi::api::core::v1::PodTemplateSpec,
                          path: &str,
                          errors: &mut Vec<FieldError>| {
        match t.spec.as_ref() {
            None => errors.push(FieldError::new(
                format!("{path}.spec"),
                FieldErrorKind::Required,
                "Required value",
            )),
            Some(pod) => {
                if pod.containers.is_empty() {
                    errors.push(FieldError::new(
                        format!("{path}.spec.containers"),
                        FieldErrorKind::Required,
                        "Required value: at least one container",
                    ));
                }
                if pod.restart_policy.as_deref() == Some("Always") {
                    errors.push(invalid(
                        format!("{path}.spec.restartPolicy"),
                        "a migration's restartPolicy must be Never or OnFailure",
                    ));
                }
            }
        }
    };
    check_template(&spec.template, "spec.template", &mut errors);
    if let Some(rollback) = &spec.rollback {
        check_template(&rollback.template, "spec.rollback.template", &mut errors);
    }
    if let Some(backup) = &spec.backup {
        check_template(&backup.template, "spec.backup.template", &mut errors);
    }
    if spec.require_rollback == Some(true) && spec.rollback.is_none() {
        // Named at the policy that is not met: the missing field has no line to point at.
        errors.push(invalid(
            "spec.requireRollback",
            "requireRollback is set, but spec.rollback (the down Job) is missing",
        ));
    }
    errors
}

/// Problems in a FeatureFlag spec.
pub fn flag(spec: &FeatureFlagSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    windows(&spec.windows, &mut errors);
    if !spec.variants.contains_key(&spec.default_variant) {
        errors.push(invalid(
            "spec.defaultVariant",
            "defaultVariant must name one of the variants",
        ));
    }
    if let Some(name) = spec.variants.keys().find(|k| k.is_empty() || k.len() > 63) {
        errors.push(invalid(
            format!("spec.variants.{name}"),
            "variant names must be 1 to 63 characters",
        ));
    }
    let kinds: Vec<&str> = spec.variants.values().map(json_kind).collect();
    if kinds.windows(2).any(|w| w[0] != w[1]) {
        errors.push(invalid(
            "spec.variants",
            "all variants must have the same type (boolean, string, number or object)",
        ));
    }
    if let Some(rollout) = &spec.rollout {
        if !spec.variants.contains_key(&rollout.variant) {
            errors.push(invalid(
                "spec.rollout.variant",
                "rollout.variant must name one of the variants",
            ));
        }
        if rollout.variant == spec.default_variant {
            errors.push(invalid(
                "spec.rollout.variant",
                "rollout.variant must differ from defaultVariant",
            ));
        }
        if rollout.steps.windows(2).any(|w| w[0] >= w[1]) {
            errors.push(invalid("spec.rollout.steps", "steps must be ascending"));
        }
        if let Some(p) = rollout.steps.iter().find(|p| !(0..=100).contains(*p)) {
            errors.push(invalid(
                "spec.rollout.steps",
                format!("{p} is not a percentage from 0 to 100"),
            ));
        }
        if rollout.interval.is_some_and(|i| i.as_std() < MIN_INTERVAL) {
            errors.push(invalid("spec.rollout.interval", "must be at least 1s"));
        }
        if let Some(a) = &rollout.analysis {
            analysis(a, "spec.rollout.analysis", &mut errors);
        }
        if spec.targeting.is_some() {
            errors.push(invalid(
                "spec.targeting",
                "targeting and rollout cannot both be set: the rollout renders the targeting",
            ));
        }
    }
    if let Some(metadata) = &spec.metadata
        && let Some((k, _)) = metadata
            .iter()
            .find(|(_, v)| !(v.is_string() || v.is_number() || v.is_boolean()))
    {
        errors.push(invalid(
            format!("spec.metadata.{k}"),
            "metadata values must be strings, numbers or booleans",
        ));
    }
    errors
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::Object(_) => "object",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Null => "null",
    }
}

/// Largest compiled size of a header route's expression: it runs on every request the
/// gateway serves.
const HEADER_REGEX_SIZE: usize = 64 * 1024;

fn header_matches(matches: &[crate::api::HeaderMatch], path: &str, errors: &mut Vec<FieldError>) {
    for (i, m) in matches.iter().enumerate() {
        let at = format!("{path}[{i}].headerValue");
        let v = &m.header_value;
        let set = [&v.exact, &v.prefix, &v.regex]
            .iter()
            .filter(|x| x.is_some())
            .count();
        if set != 1 {
            errors.push(invalid(
                &at,
                "a header value matches by exactly one of exact, prefix or regex",
            ));
        }
        if let Some(re) = &v.regex
            && let Err(e) = regex::RegexBuilder::new(re)
                .size_limit(HEADER_REGEX_SIZE)
                .build()
        {
            // The parser's message draws the expression over several lines; its last says why.
            let text = e.to_string();
            let why = text.lines().last().unwrap_or_default();
            let why = why.strip_prefix("error: ").unwrap_or(why);
            errors.push(invalid(
                format!("{at}.regex"),
                format!("{re:?} is not a regular expression a gateway can use: {why}"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::egress::Allowlist;

    fn spec(address: &str) -> RolloutSpec {
        serde_json::from_value(serde_json::json!({
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"analysis": {"metrics": [
                {"name": "errors", "successCondition": "result < 1", "prometheus": {"query": "q"}},
                {"name": "latency", "successCondition": "result < 1", "prometheus": {"query": "q", "address": address}}]}}],
                "analysis": {"metrics": [{"name": "judge", "compare": {"canaryQuery": "a", "stableQuery": "b", "address": address}}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn addresses_off_the_allowlist_are_named_with_their_path_and_the_setting() {
        let allowed = Allowlist::new(["prom.example"], Some("http://default-prom:9090"));
        assert!(egress(&spec("http://prom.example:9090"), &allowed).is_empty());
        assert!(egress(&spec("http://default-prom"), &allowed).is_empty());
        let problems = egress(&spec("http://169.254.169.254/latest"), &allowed);
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(
            text[0].starts_with("spec.strategy.canary.analysis.metrics[0].compare.address: "),
            "{}",
            text[0]
        );
        assert!(
            text[1].starts_with(
                "spec.strategy.canary.steps[1].analysis.metrics[1].prometheus.address: "
            ),
            "{}",
            text[1]
        );
        for t in &text {
            assert!(t.contains("\"169.254.169.254\""), "{t}");
            assert!(t.contains("--allowed-hosts"), "{t}");
        }
    }
}
