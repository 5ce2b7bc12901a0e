//! The scenario file of `cutover simulate`: initial objects, timed changes, metric scripts,
//! workload behaviour and expectations. Loading checks everything it can before a run, and
//! every error names the file and line.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::api::{Duration, FlagPhase, MigrationPhase, RolloutPhase};
use crate::sim::{prometheus::MetricScript, resources};

/// Longest simulated time accepted.
pub const MAX_DURATION_SECS: u64 = 7 * 24 * 3600;

/// A scenario that cannot be run, with where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ScenarioError {
    /// File the problem is in.
    pub file: String,
    /// 1-based line (0 when the whole file is meant).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// The one kind a scenario file may name.
#[derive(Debug, Deserialize)]
enum ScenarioKind {
    Scenario,
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ScenarioFile {
    /// `Scenario`: tells the file apart from a manifest, so `cutover lint` of a directory
    /// passes over it.
    #[serde(default)]
    #[allow(dead_code)]
    kind: Option<ScenarioKind>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    duration: Option<Spanned<Duration>>,
    /// When the virtual clock starts (RFC 3339); deployment windows are read against it.
    #[serde(default, alias = "startTime", alias = "startAt")]
    start: Option<Spanned<String>>,
    #[serde(default)]
    tick: Option<Spanned<Duration>>,
    #[serde(default)]
    objects: Vec<Spanned<Value>>,
    #[serde(default)]
    workloads: Option<WorkloadSpec>,
    #[serde(default)]
    metrics: Option<Spanned<Value>>,
    #[serde(default)]
    events: Vec<Spanned<EventSpec>>,
    #[serde(default)]
    expect: Vec<Spanned<Expectation>>,
}

/// How simulated workloads behave unless a pod template's `sim.cutover.dev/*` annotations
/// say otherwise.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadSpec {
    /// Time until a new pod is ready (default 2s).
    #[serde(default)]
    pub ready_after: Option<Duration>,
    /// Time a Job's pod runs (default 2s).
    #[serde(default)]
    pub job_duration: Option<Duration>,
}

/// A timed change: exactly one action at `at`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EventSpec {
    /// When, from the start of the simulation.
    pub at: Duration,
    /// Apply a manifest (inline, or `{path: file}`).
    #[serde(default)]
    pub apply: Option<Value>,
    /// Set a Rollout's image.
    #[serde(default)]
    pub set_image: Option<SetImage>,
    /// Annotate a Rollout with `cutover.dev/promote`.
    #[serde(default)]
    pub promote: Option<String>,
    /// Annotate a Rollout with `cutover.dev/promote-full`.
    #[serde(default)]
    pub promote_full: Option<String>,
    /// Annotate a Rollout with `cutover.dev/abort`.
    #[serde(default)]
    pub abort: Option<String>,
    /// Annotate a Rollout with `cutover.dev/retry`.
    #[serde(default)]
    pub retry: Option<String>,
    /// Set a Rollout's replicas.
    #[serde(default)]
    pub scale: Option<ScaleTo>,
    /// Merge-patch an object.
    #[serde(default)]
    pub patch: Option<PatchSpec>,
    /// Delete an object.
    #[serde(default)]
    pub delete: Option<ObjectRef>,
}

/// `setImage`: a new image for one container of a Rollout.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SetImage {
    /// Rollout name.
    pub rollout: String,
    /// The image.
    pub image: String,
    /// Container name (default: the first container).
    #[serde(default)]
    pub container: Option<String>,
    /// Pod-template annotations to set with it (e.g. `sim.cutover.dev/never-ready`).
    #[serde(default)]
    pub pod_annotations: Option<serde_json::Map<String, Value>>,
}

/// `scale`: new replicas for a Rollout.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScaleTo {
    /// Rollout name.
    pub rollout: String,
    /// Replicas.
    pub replicas: i32,
}

/// An object by kind and name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectRef {
    /// Kind, e.g. `Rollout`.
    pub kind: String,
    /// Name.
    pub name: String,
}

/// `patch`: a JSON merge patch of an object.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchSpec {
    /// Kind, e.g. `Rollout`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// The merge patch.
    pub patch: Value,
}

/// What must (or must never) be true of a Rollout.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expectation {
    /// Rollout the checks are about (default: the only Rollout).
    #[serde(default)]
    pub rollout: Option<String>,
    /// Must hold at some time up to this one (default: must hold at the end).
    #[serde(default)]
    pub before: Option<Duration>,
    /// Checked only from this time on: with `before`, must hold at some time between the
    /// two; with `never`, at no time after it.
    #[serde(default)]
    pub after: Option<Duration>,
    /// Must hold at no time (up to `before`, from `after`, when given).
    #[serde(default)]
    pub never: Option<bool>,
    /// `status.phase`.
    #[serde(default)]
    pub phase: Option<RolloutPhase>,
    /// `status.currentStepIndex`.
    #[serde(default)]
    pub step: Option<i32>,
    /// `status.canaryWeight`.
    #[serde(default)]
    pub weight: Option<i32>,
    /// Image of the stable revision.
    #[serde(default)]
    pub stable_image: Option<String>,
    /// A decision with this reason (an Event of the Rollout) has been made.
    #[serde(default)]
    pub reason: Option<String>,
    /// `status.message` contains this text.
    #[serde(default)]
    pub message: Option<String>,
    /// MigrationJob the `migrationPhase` check is about.
    #[serde(default)]
    pub migration: Option<String>,
    /// `status.phase` of the MigrationJob.
    #[serde(default)]
    pub migration_phase: Option<MigrationPhase>,
    /// FeatureFlag the `flagPhase` / `flagPercentage` checks are about.
    #[serde(default)]
    pub flag: Option<String>,
    /// `status.phase` of the FeatureFlag.
    #[serde(default)]
    pub flag_phase: Option<FlagPhase>,
    /// `status.percentage` of the FeatureFlag.
    #[serde(default)]
    pub flag_percentage: Option<i32>,
}

impl Expectation {
    /// The checks, as `field = value` text.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = self.phase {
            parts.push(format!("phase {p:?}"));
        }
        if let Some(s) = self.step {
            parts.push(format!("step {s}"));
        }
        if let Some(w) = self.weight {
            parts.push(format!("weight {w}"));
        }
        if let Some(i) = &self.stable_image {
            parts.push(format!("stable image {i}"));
        }
        if let Some(r) = &self.reason {
            parts.push(format!("a {r} decision"));
        }
        if let Some(m) = &self.message {
            parts.push(format!("message containing {m:?}"));
        }
        if let Some(p) = self.flag_phase {
            parts.push(format!(
                "FeatureFlag {} {p:?}",
                self.flag.as_deref().unwrap_or("?")
            ));
        }
        if let Some(p) = self.flag_percentage {
            parts.push(format!(
                "FeatureFlag {} at {p} %",
                self.flag.as_deref().unwrap_or("?")
            ));
        }
        if let Some(p) = self.migration_phase {
            parts.push(format!(
                "MigrationJob {} {p:?}",
                self.migration.as_deref().unwrap_or("?")
            ));
        }
        parts.join(", ")
    }

    /// Whether it checks a Rollout (and not only a MigrationJob).
    pub fn checks_rollout(&self) -> bool {
        self.phase.is_some()
            || self.step.is_some()
            || self.weight.is_some()
            || self.stable_image.is_some()
            || self.reason.is_some()
            || self.message.is_some()
    }

    fn has_checks(&self) -> bool {
        self.migration_phase.is_some()
            || self.flag_phase.is_some()
            || self.flag_percentage.is_some()
            || self.phase.is_some()
            || self.step.is_some()
            || self.weight.is_some()
            || self.stable_image.is_some()
            || self.reason.is_some()
            || self.message.is_some()
    }
}

/// One initial object or applied manifest, with where it was written.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The object.
    pub object: Value,
    /// `file:line` it came from.
    pub origin: String,
}

/// A timed action, checked.
#[derive(Debug, Clone)]
pub enum Action {
    /// Apply manifests.
    Apply(Vec<Manifest>),
    /// Set a Rollout's image.
    SetImage(SetImage),
    /// Set an annotation on a Rollout.
    Annotate {
        /// Rollout name.
        rollout: String,
        /// Annotation key.
        key: &'static str,
    },
    /// Scale a Rollout.
    Scale(ScaleTo),
    /// Merge-patch an object.
    Patch(PatchSpec),
    /// Delete an object.
    Delete(ObjectRef),
}

/// A timed action with its time and line.
#[derive(Debug, Clone)]
pub struct TimedAction {
    /// Seconds from the start.
    pub at: u64,
    /// Line in the scenario file.
    pub line: usize,
    /// The action.
    pub action: Action,
}

/// An expectation with its line.
#[derive(Debug, Clone)]
pub struct Expect {
    /// 1-based position in the list.
    pub index: usize,
    /// Line in the scenario file.
    pub line: usize,
    /// The checks.
    pub spec: Expectation,
}

/// A loaded, checked scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name (default: the file's stem).
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Simulated seconds.
    pub duration: u64,
    /// When the virtual clock starts.
    pub start: jiff::Timestamp,
    /// Seconds between two looks at the cluster.
    pub tick: u64,
    /// Initial objects.
    pub objects: Vec<Manifest>,
    /// Workload behaviour.
    pub workloads: WorkloadSpec,
    /// The scripted Prometheus.
    pub metrics: MetricScript,
    /// Timed actions, in time order.
    pub actions: Vec<TimedAction>,
    /// Expectations.
    pub expectations: Vec<Expect>,
}

/// Loads and checks a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: file.clone(),
        line: 0,
        message: format!("cannot read: {e}"),
    })?;
    parse(&text, &file, path.parent().unwrap_or(Path::new(".")))
}

fn err(file: &str, line: usize, message: impl Into<String>) -> ScenarioError {
    ScenarioError {
        file: file.to_string(),
        line,
        message: message.into(),
    }
}

fn line_of<T>(s: &Spanned<T>) -> usize {
    s.referenced.line() as usize
}

/// Parses scenario text; `dir` resolves relative `path:` references.
pub fn parse(text: &str, file: &str, dir: &Path) -> Result<Scenario, ScenarioError> {
    let raw: ScenarioFile = serde_saphyr::from_str(text).map_err(|e| {
        let message = e.to_string();
        let line = line_in_message(&message).unwrap_or(0);
        err(file, line, first_line(&message))
    })?;
    let duration = match &raw.duration {
        None => 3600,
        Some(d) => {
            let secs = d.value.as_std().as_secs();
            if secs == 0 || secs > MAX_DURATION_SECS {
                return Err(err(
                    file,
                    line_of(d),
                    format!(
                        "duration must be between 1s and {}d",
                        MAX_DURATION_SECS / 86400
                    ),
                ));
            }
            secs
        }
    };
    let start = match &raw.start {
        None => jiff::Timestamp::from_second(super::START).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        Some(s) => s.value.parse::<jiff::Timestamp>().map_err(|e| {
            err(
                file,
                line_of(s),
                format!(
                    "start {:?} is not an RFC 3339 time such as 2030-01-04T18:00:00Z: {e}",
                    s.value
                ),
            )
        })?,
    };
    let tick = match &raw.tick {
        None => 1,
        Some(t) => {
            let secs = t.value.as_std().as_secs();
            if secs == 0 || secs > 60 {
                return Err(err(file, line_of(t), "tick must be between 1s and 1m"));
            }
            secs
        }
    };
    let mut objects = Vec::new();
    for o in &raw.objects {
        objects.extend(manifests(&o.value, file, line_of(o), dir)?);
    }
    let metrics = match &raw.metrics {
        None => MetricScript::default(),
        Some(m) => {
            let text = serde_json::to_string(&m.value).unwrap_or_default();
            MetricScript::parse(&text).map_err(|e| err(file, line_of(m), e.to_string()))?
        }
    };
    let mut actions = Vec::new();
    let mut last_at = 0;
    for e in &raw.events {
        let line = line_of(e);
        let at = e.value.at.as_std().as_secs();
        if at < last_at {
            return Err(err(
                file,
                line,
                format!(
                    "events must be in time order: {} comes after {}",
                    e.value.at,
                    Duration::from_secs(last_at)
                ),
            ));
        }
        if at > duration {
            return Err(err(
                file,
                line,
                format!(
                    "event at {} is after the end of the scenario ({})",
                    e.value.at,
                    Duration::from_secs(duration)
                ),
            ));
        }
        last_at = at;
        actions.push(TimedAction {
            at,
            line,
            action: action(&e.value, file, line, dir)?,
        });
    }
    let mut expectations = Vec::new();
    for (i, x) in raw.expect.iter().enumerate() {
        let line = line_of(x);
        if !x.value.has_checks() {
            return Err(err(
                file,
                line,
                "an expectation needs at least one of phase, step, weight, stableImage, reason, message, migrationPhase, flagPhase, flagPercentage",
            ));
        }
        if x.value.migration_phase.is_some() != x.value.migration.is_some() {
            return Err(err(
                file,
                line,
                "migrationPhase and migration go together: name the MigrationJob",
            ));
        }
        if (x.value.flag_phase.is_some() || x.value.flag_percentage.is_some())
            != x.value.flag.is_some()
        {
            return Err(err(
                file,
                line,
                "flagPhase and flagPercentage go with flag: name the FeatureFlag",
            ));
        }
        if let (Some(a), Some(b)) = (x.value.after, x.value.before)
            && a >= b
        {
            return Err(err(file, line, format!("after {a} is not before {b}")));
        }
        if let Some(b) = x.value.before
            && b.as_std().as_secs() > duration
        {
            return Err(err(
                file,
                line,
                format!(
                    "before {b} is after the end of the scenario ({})",
                    Duration::from_secs(duration)
                ),
            ));
        }
        expectations.push(Expect {
            index: i + 1,
            line,
            spec: x.value.clone(),
        });
    }
    let name = raw.name.unwrap_or_else(|| {
        Path::new(file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let scenario = Scenario {
        start,
        name,
        description: raw.description,
        duration,
        tick,
        objects,
        workloads: raw.workloads.unwrap_or_default(),
        metrics,
        actions,
        expectations,
    };
    check_references(&scenario, file)?;
    Ok(scenario)
}

/// Manifests of an `objects` entry or an `apply` action: inline, or `{path: FILE}`.
fn manifests(
    value: &Value,
    file: &str,
    line: usize,
    dir: &Path,
) -> Result<Vec<Manifest>, ScenarioError> {
    let path_only = value
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("path"))
        .and_then(Value::as_str);
    let found: Vec<(Value, String)> = match path_only {
        Some(p) => {
            let full: PathBuf = dir.join(p);
            let text = std::fs::read_to_string(&full)
                .map_err(|e| err(file, line, format!("cannot read {}: {e}", full.display())))?;
            let docs: Vec<Option<Value>> = crate::yaml::from_multi_str(&text)
                .map_err(|e| err(file, line, format!("{}: {e}", full.display())))?;
            docs.into_iter()
                .flatten()
                .enumerate()
                .map(|(i, d)| (d, format!("{}#{}", full.display(), i + 1)))
                .collect()
        }
        None => vec![(value.clone(), format!("{file}:{line}"))],
    };
    let from_file = path_only.is_some();
    let mut out = Vec::new();
    for (object, origin) in found {
        // Inline objects are already located by file and line; those of a file name it.
        let at = if from_file {
            format!("{origin}: ")
        } else {
            String::new()
        };
        let api_version = object.get("apiVersion").and_then(Value::as_str);
        let kind = object.get("kind").and_then(Value::as_str);
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            return Err(err(
                file,
                line,
                format!("{at}an object needs apiVersion and kind"),
            ));
        };
        if resource_type(api_version, kind).is_none() {
            return Err(err(
                file,
                line,
                format!(
                    "{at}unknown kind {kind} ({api_version}); the simulation knows {}",
                    known_kinds().join(", ")
                ),
            ));
        }
        if object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_none()
        {
            return Err(err(file, line, format!("{at}{kind} needs metadata.name")));
        }
        // The operator's own kinds are checked as `cutover lint` does.
        let problems = crate::cli::lint::lint_document(&object).unwrap_or_default();
        if let Some(p) = problems.first() {
            return Err(err(file, line, format!("{at}{kind}: {p}")));
        }
        out.push(Manifest { object, origin });
    }
    Ok(out)
}

/// Kinds a scenario may create: the sim's built-in kinds and the operator's.
pub fn known_kinds() -> Vec<String> {
    let mut kinds: Vec<String> = resources::builtins()
        .into_iter()
        .map(|t| t.kind)
        .chain(["Rollout", "MigrationJob", "FeatureFlag", "HTTPRoute"].map(String::from))
        .filter(|k| k != "CustomResourceDefinition")
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

/// (group, version, plural) of a kind the simulation serves.
pub fn resource_type(api_version: &str, kind: &str) -> Option<(String, String, String)> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let ours = match (group, kind) {
        ("cutover.dev", "Rollout") => Some("rollouts"),
        ("cutover.dev", "MigrationJob") => Some("migrationjobs"),
        ("cutover.dev", "FeatureFlag") => Some("featureflags"),
        ("gateway.networking.k8s.io", "HTTPRoute") => Some("httproutes"),
        _ => None,
    };
    if let Some(plural) = ours {
        return Some((group.into(), version.into(), plural.into()));
    }
    resources::builtins()
        .into_iter()
        .find(|t| t.group == group && t.version == version && t.kind == kind)
        .map(|t| (t.group, t.version, t.plural))
}

fn action(e: &EventSpec, file: &str, line: usize, dir: &Path) -> Result<Action, ScenarioError> {
    let mut found = Vec::new();
    if let Some(a) = &e.apply {
        found.push(Action::Apply(manifests(a, file, line, dir)?));
    }
    if let Some(s) = &e.set_image {
        found.push(Action::SetImage(s.clone()));
    }
    for (name, key) in [
        (&e.promote, crate::api::ANNOTATION_PROMOTE),
        (&e.promote_full, crate::api::ANNOTATION_PROMOTE_FULL),
        (&e.abort, crate::api::ANNOTATION_ABORT),
        (&e.retry, crate::api::ANNOTATION_RETRY),
    ] {
        if let Some(rollout) = name {
            found.push(Action::Annotate {
                rollout: rollout.clone(),
                key,
            });
        }
    }
    if let Some(s) = &e.scale {
        found.push(Action::Scale(s.clone()));
    }
    if let Some(p) = &e.patch {
        found.push(Action::Patch(p.clone()));
    }
    if let Some(d) = &e.delete {
        found.push(Action::Delete(d.clone()));
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(err(
            file,
            line,
            "an event needs one action: apply, setImage, promote, promoteFull, abort, retry, scale, patch or delete",
        )),
        n => Err(err(
            file,
            line,
            format!("an event has one action; this one has {n} (split it into several events)"),
        )),
    }
}

/// Rollouts named by events and expectations must exist among the objects.
fn check_references(s: &Scenario, file: &str) -> Result<(), ScenarioError> {
    let mut rollouts: Vec<String> = Vec::new();
    let mut migrations: Vec<String> = Vec::new();
    let mut flags: Vec<String> = Vec::new();
    let mut add = |m: &Manifest| {
        let name = m.object.pointer("/metadata/name").and_then(Value::as_str);
        match (m.object.get("kind").and_then(Value::as_str), name) {
            (Some("Rollout"), Some(n)) => rollouts.push(n.to_string()),
            (Some("MigrationJob"), Some(n)) => migrations.push(n.to_string()),
            (Some("FeatureFlag"), Some(n)) => flags.push(n.to_string()),
            _ => {}
        }
    };
    s.objects.iter().for_each(&mut add);
    for a in &s.actions {
        if let Action::Apply(ms) = &a.action {
            ms.iter().for_each(&mut add);
        }
    }
    let known = |name: &str| rollouts.iter().any(|r| r == name);
    for a in &s.actions {
        let named = match &a.action {
            Action::SetImage(x) => Some(&x.rollout),
            Action::Annotate { rollout, .. } => Some(rollout),
            Action::Scale(x) => Some(&x.rollout),
            _ => None,
        };
        if let Some(n) = named
            && !known(n)
        {
            return Err(err(
                file,
                a.line,
                format!("no Rollout {n:?} among the scenario's objects"),
            ));
        }
    }
    for x in &s.expectations {
        if let Some(m) = &x.spec.migration
            && !migrations.contains(m)
        {
            return Err(err(
                file,
                x.line,
                format!("no MigrationJob {m:?} among the scenario's objects"),
            ));
        }
        if let Some(f) = &x.spec.flag
            && !flags.contains(f)
        {
            return Err(err(
                file,
                x.line,
                format!("no FeatureFlag {f:?} among the scenario's objects"),
            ));
        }
        if !x.spec.checks_rollout() {
            continue;
        }
        match &x.spec.rollout {
            Some(n) if !known(n) => {
                return Err(err(
                    file,
                    x.line,
                    format!("no Rollout {n:?} among the scenario's objects"),
                ));
            }
            None if rollouts.len() != 1 => {
                return Err(err(
                    file,
                    x.line,
                    format!(
                        "name the Rollout: the scenario has {} Rollouts",
                        rollouts.len()
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The first line of a YAML error without its own "error: line N column M:" prefix (the
/// line is reported separately).
fn first_line(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message).trim();
    let rest = first.strip_prefix("error: ").unwrap_or(first);
    match rest.find(": ") {
        Some(i) if rest.starts_with("line ") => rest[i + 2..].to_string(),
        _ => rest.to_string(),
    }
}

/// The line number in a YAML error message ("... at line 12 column 3").
fn line_in_message(message: &str) -> Option<usize> {
    let i = message.find("line ")?;
    message[i + 5..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}
