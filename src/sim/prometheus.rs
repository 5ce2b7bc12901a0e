//! The scripted Prometheus: `/api/v1/query` and `/api/v1/query_range` answered from rules
//! whose regex matches the rendered query, with values that change over (virtual) time.
//! The rule format is documented in `docs/sim.md`.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

use super::store::Store;
use crate::api::Duration;

/// A metric script: the rules, and windows during which Prometheus is down.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricScript {
    /// Rules, tried in order; the first whose regex matches answers.
    #[serde(default)]
    pub metrics: Vec<MetricRule>,
    /// Windows (from the start of the sim) in which every query fails with 503.
    #[serde(default)]
    pub outages: Vec<Outage>,
}

/// One scripted series.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricRule {
    /// Name used in messages.
    #[serde(default)]
    pub name: Option<String>,
    /// Regex matched against the rendered query; `{{canary}}` and `{{stable}}` stand for
    /// the current and stable revision hashes of any Rollout.
    #[serde(rename = "match")]
    pub pattern: String,
    /// A constant value (`NaN` allowed).
    #[serde(default)]
    pub value: Option<ScriptValue>,
    /// Values from a point in time on (a step function; before the first point: no data).
    #[serde(default)]
    pub values: Vec<TimedValue>,
    /// Interpolate linearly between points instead of stepping.
    #[serde(default)]
    pub linear: bool,
    /// Relative noise added to each sample (0.1 = ±10 %), deterministic per timestamp.
    #[serde(default)]
    pub jitter: f64,
    /// Answer with an empty result (no data).
    #[serde(default)]
    pub empty: bool,
    /// Labels of the returned sample.
    #[serde(default)]
    pub labels: serde_json::Map<String, Value>,
    /// The pattern compiled at parse time, when it names no revision.
    #[serde(skip)]
    compiled: Option<regex::Regex>,
}

/// A value at a time.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimedValue {
    /// Time since the sim started.
    pub at: Duration,
    /// The value from then on.
    pub value: ScriptValue,
}

/// A number, or `NaN`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(untagged)]
pub enum ScriptValue {
    /// A number.
    Number(f64),
    /// `"NaN"`, `"+Inf"`, `"-Inf"`.
    Text(SpecialValue),
}

/// Non-finite values Prometheus can return.
#[derive(Clone, Copy, Debug, Deserialize)]
pub enum SpecialValue {
    /// Not a number.
    NaN,
    /// Positive infinity.
    #[serde(rename = "+Inf")]
    PosInf,
    /// Negative infinity.
    #[serde(rename = "-Inf")]
    NegInf,
}

impl ScriptValue {
    fn get(self) -> f64 {
        match self {
            Self::Number(n) => n,
            Self::Text(SpecialValue::NaN) => f64::NAN,
            Self::Text(SpecialValue::PosInf) => f64::INFINITY,
            Self::Text(SpecialValue::NegInf) => f64::NEG_INFINITY,
        }
    }
}

/// A window in which Prometheus does not answer.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outage {
    /// Start, since the sim started.
    pub from: Duration,
    /// End, since the sim started.
    pub to: Duration,
}

/// A script that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// The file is not valid YAML for a script.
    #[error("metric script: {0}")]
    Parse(String),
    /// A rule's regex does not compile.
    #[error("metric script rule {index}: invalid regex: {reason}")]
    Regex {
        /// Index of the rule.
        index: usize,
        /// Why.
        reason: String,
    },
}

impl MetricRule {
    fn names_revision(&self) -> bool {
        self.pattern.contains("{{canary}}") || self.pattern.contains("{{stable}}")
    }
}

impl MetricScript {
    /// Parses and checks a script.
    pub fn parse(text: &str) -> Result<Self, ScriptError> {
        let mut script: Self =
            crate::yaml::from_str(text).map_err(|e| ScriptError::Parse(e.to_string()))?;
        for (index, rule) in script.metrics.iter_mut().enumerate() {
            let compiled = regex::Regex::new(
                &rule
                    .pattern
                    .replace("{{canary}}", "x")
                    .replace("{{stable}}", "x"),
            )
            .map_err(|e| ScriptError::Regex {
                index,
                reason: e.to_string(),
            })?;
            // Every query is matched against every rule before it: compile each once.
            if !rule.names_revision() {
                rule.compiled = Some(compiled);
            }
        }
        Ok(script)
    }
}

/// The scripted Prometheus of one sim.
pub struct ScriptedPrometheus {
    script: std::sync::RwLock<MetricScript>,
    store: Arc<Store>,
    start: Timestamp,
}

impl ScriptedPrometheus {
    /// A Prometheus answering from `script`, timed from now.
    pub fn new(store: Arc<Store>, script: MetricScript) -> Self {
        let start = store.clock().now();
        Self {
            script: std::sync::RwLock::new(script),
            store,
            start,
        }
    }

    /// Replaces the script.
    pub fn set_script(&self, script: MetricScript) {
        *self.script.write().unwrap_or_else(|p| p.into_inner()) = script;
    }

    /// Answers `/api/v1/query` or `/api/v1/query_range`: HTTP status and body.
    pub fn answer(&self, endpoint: &str, params: &[(String, String)]) -> (u16, Value) {
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        let now = self.store.clock().now();
        let script = self
            .script
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let since_start = now.duration_since(self.start);
        if script.outages.iter().any(|o| in_window(since_start, o)) {
            return (
                503,
                json!({"status": "error", "errorType": "unavailable", "error": "scripted outage"}),
            );
        }
        let Some(query) = get("query") else {
            return bad("missing query");
        };
        let rule = self.find_rule(&script, query);
        match endpoint {
            "query" => {
                let at = match get("time") {
                    Some(t) => match parse_time(t) {
                        Some(t) => t,
                        None => return bad("invalid time"),
                    },
                    None => now,
                };
                let result: Vec<Value> = rule
                    .and_then(|r| self.sample(r, at).map(|v| json!({"metric": r.labels, "value": [seconds(at), format_value(v)]})))
                    .into_iter()
                    .collect();
                ok(json!({"resultType": "vector", "result": result}))
            }
            "query_range" => {
                let (Some(start), Some(end), Some(step)) = (
                    get("start").and_then(parse_time),
                    get("end").and_then(parse_time),
                    get("step").and_then(parse_step),
                ) else {
                    return bad("query_range needs start, end and step");
                };
                if step <= SignedDuration::ZERO
                    || end < start
                    || (end.duration_since(start).as_secs() / step.as_secs().max(1)) > 11_000
                {
                    return bad("exceeded maximum resolution of 11,000 points per timeseries");
                }
                let mut values = Vec::new();
                let mut t = start;
                while t <= end {
                    if let Some(v) = rule.and_then(|r| self.sample(r, t)) {
                        values.push(json!([seconds(t), format_value(v)]));
                    }
                    t += step;
                }
                let result: Vec<Value> = match rule {
                    Some(r) if !values.is_empty() => {
                        vec![json!({"metric": r.labels, "values": values})]
                    }
                    _ => Vec::new(),
                };
                ok(json!({"resultType": "matrix", "result": result}))
            }
            other => (
                404,
                json!({"status": "error", "errorType": "not_found", "error": format!("unknown endpoint {other}")}),
            ),
        }
    }

    fn find_rule<'a>(&self, script: &'a MetricScript, query: &str) -> Option<&'a MetricRule> {
        // Reading every Rollout's revisions costs a list: only rules that name them pay it.
        let revisions = std::cell::OnceCell::new();
        script.metrics.iter().find(|rule| {
            if let Some(re) = &rule.compiled {
                return re.is_match(query);
            }
            let candidates: Vec<String> = if rule.names_revision() {
                revisions
                    .get_or_init(|| self.revisions())
                    .iter()
                    .map(|(canary, stable)| {
                        rule.pattern
                            .replace("{{canary}}", &regex::escape(canary))
                            .replace("{{stable}}", &regex::escape(stable))
                    })
                    .collect()
            } else {
                vec![rule.pattern.clone()]
            };
            candidates
                .iter()
                .any(|p| regex::Regex::new(p).is_ok_and(|re| re.is_match(query)))
        })
    }

    /// (canary, stable) revision hashes of every Rollout with both.
    fn revisions(&self) -> Vec<(String, String)> {
        let Some(rt) = self.store.resolve("cutover.dev", "v1alpha1", "rollouts") else {
            return Vec::new();
        };
        let Ok(page) = self.store.list(&rt, &Default::default(), None, None) else {
            return Vec::new();
        };
        page.items
            .iter()
            .filter_map(|r| {
                let canary = r.pointer("/status/currentRevision")?.as_str()?.to_string();
                let stable = r.pointer("/status/stableRevision")?.as_str()?.to_string();
                Some((canary, stable))
            })
            .collect()
    }

    fn sample(&self, rule: &MetricRule, at: Timestamp) -> Option<f64> {
        if rule.empty {
            return None;
        }
        let since = at.duration_since(self.start);
        let base = match (&rule.value, rule.values.as_slice()) {
            (Some(v), _) => v.get(),
            (None, []) => return None,
            (None, points) => value_at(points, since, rule.linear)?,
        };
        if rule.jitter == 0.0 || !base.is_finite() {
            return Some(base);
        }
        // Deterministic noise in [-1, 1) from the timestamp, so reruns see the same series.
        let mut x = (at.as_second() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x >> 29;
        let unit = (x % 2_000_001) as f64 / 1_000_000.0 - 1.0;
        Some(base * (1.0 + rule.jitter * unit))
    }
}

fn value_at(points: &[TimedValue], since: SignedDuration, linear: bool) -> Option<f64> {
    let secs = since.as_secs_f64();
    let idx = points
        .iter()
        .rposition(|p| p.at.as_std().as_secs_f64() <= secs)?;
    let here = &points[idx];
    match points.get(idx + 1) {
        Some(next) if linear => {
            let (t0, t1) = (
                here.at.as_std().as_secs_f64(),
                next.at.as_std().as_secs_f64(),
            );
            let f = if t1 > t0 {
                (secs - t0) / (t1 - t0)
            } else {
                0.0
            };
            Some(here.value.get() + f * (next.value.get() - here.value.get()))
        }
        _ => Some(here.value.get()),
    }
}

fn in_window(since: SignedDuration, outage: &Outage) -> bool {
    let s = since.as_secs_f64();
    s >= outage.from.as_std().as_secs_f64() && s < outage.to.as_std().as_secs_f64()
}

fn ok(data: Value) -> (u16, Value) {
    (200, json!({"status": "success", "data": data}))
}

fn bad(message: &str) -> (u16, Value) {
    (
        400,
        json!({"status": "error", "errorType": "bad_data", "error": message}),
    )
}

fn seconds(t: Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}

fn parse_time(text: &str) -> Option<Timestamp> {
    if let Ok(secs) = text.parse::<f64>() {
        return Timestamp::from_millisecond((secs * 1000.0) as i64).ok();
    }
    text.parse().ok()
}

fn parse_step(text: &str) -> Option<SignedDuration> {
    if let Ok(secs) = text.parse::<f64>() {
        return SignedDuration::try_from_secs_f64(secs).ok();
    }
    let d: Duration = text.parse().ok()?;
    SignedDuration::try_from(d.as_std()).ok()
}
