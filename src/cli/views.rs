//! What `kubectl cutover` prints: the `get` table and the `status` view, with its
//! revision → Deployment → pods tree.

use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, ResourceExt, api::ListParams};

use super::plugin::PluginError;
use crate::api::{
    AnalysisVerdict, LABEL_REVISION, LABEL_ROLLOUT, Rollout, StepAction, StrategyKind,
};

/// `container=image` pairs of a pod template, for messages.
pub fn images_of(template: &k8s_openapi::api::core::v1::PodTemplateSpec) -> String {
    template
        .spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .map(|c| format!("{}={}", c.name, c.image.as_deref().unwrap_or("?")))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// The `get` table.
pub fn table(items: &[Rollout], with_namespace: bool) -> String {
    let mut rows = vec![vec![
        "NAME".to_string(),
        "STRATEGY".into(),
        "PHASE".into(),
        "STEP".into(),
        "WEIGHT".into(),
        "STABLE".into(),
        "CURRENT".into(),
    ]];
    for r in items {
        let s = r.status.clone().unwrap_or_default();
        let steps = step_count(r);
        rows.push(vec![
            r.name_any(),
            s.strategy.map_or("-".into(), |k| format!("{k:?}")),
            format!("{:?}", s.phase),
            match (s.current_step_index, steps) {
                (Some(i), Some(n)) => format!("{}/{n}", i.min(n as i32)),
                _ => "-".into(),
            },
            s.canary_weight.map_or("-".into(), |w| format!("{w}%")),
            s.stable_revision.unwrap_or_else(|| "-".into()),
            s.current_revision.unwrap_or_else(|| "-".into()),
        ]);
    }
    if with_namespace {
        // First, as kubectl prints it with -A.
        rows[0].insert(0, "NAMESPACE".into());
        for (row, r) in rows.iter_mut().skip(1).zip(items) {
            row.insert(0, r.namespace().unwrap_or_default());
        }
    }
    aligned(rows)
}

fn step_count(r: &Rollout) -> Option<usize> {
    r.spec.strategy.canary.as_ref().map(|c| c.steps.len())
}

fn bar(done: usize, total: usize, width: usize) -> String {
    let filled = (done.min(total) * width)
        .checked_div(total)
        .unwrap_or(width);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

/// One revision's Deployment as the status view's tree shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RevisionRow {
    /// Revision hash.
    pub revision: String,
    /// Role label (stable, canary, active, preview, previous, history).
    pub role: String,
    /// Deployment name.
    pub deployment: String,
    /// Ready pods.
    pub ready: i32,
    /// Desired pods.
    pub desired: i32,
    /// `container=image` pairs.
    pub images: String,
    /// Its pods: name and phase (with `ready` when ready).
    pub pods: Vec<(String, String)>,
}

/// The revision → Deployment → pods tree, newest revision first.
fn revision_tree(rows: &[RevisionRow]) -> String {
    let mut out = String::from("\nRevisions\n");
    for (i, row) in rows.iter().enumerate() {
        let last = i + 1 == rows.len();
        let (branch, stem) = if last {
            ("└─", "  ")
        } else {
            ("├─", "│ ")
        };
        out.push_str(&format!(
            "{branch} {} ({}) {}\n",
            row.revision, row.role, row.images
        ));
        out.push_str(&format!(
            "{stem} └─ deployment {}  {}/{} ready\n",
            row.deployment, row.ready, row.desired
        ));
        for (j, (pod, state)) in row.pods.iter().enumerate() {
            let twig = if j + 1 == row.pods.len() {
                "└─"
            } else {
                "├─"
            };
            out.push_str(&format!("{stem}    {twig} pod {pod}  {state}\n"));
        }
    }
    out
}

/// The tree's rows from a Rollout's Deployments and pods (newest Deployment first).
pub async fn revision_rows(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Vec<RevisionRow>, PluginError> {
    use k8s_openapi::api::core::v1::Pod;
    let selector = format!("{LABEL_ROLLOUT}={name}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let mut owned = deployments
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    owned.sort_by_key(|d| std::cmp::Reverse(d.metadata.creation_timestamp.clone().map(|t| t.0)));
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pods = pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    Ok(owned
        .iter()
        .map(|d| {
            let revision = d.labels().get(LABEL_REVISION).cloned().unwrap_or_default();
            let template = d
                .spec
                .as_ref()
                .map(|s| s.template.clone())
                .unwrap_or_default();
            RevisionRow {
                role: d
                    .labels()
                    .get(crate::api::LABEL_ROLE)
                    .cloned()
                    .unwrap_or_default(),
                deployment: d.name_any(),
                ready: d
                    .status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0),
                desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
                images: images_of(&template),
                pods: pods
                    .iter()
                    .filter(|p| p.labels().get(LABEL_REVISION) == Some(&revision))
                    .map(|p| {
                        let status = p.status.clone().unwrap_or_default();
                        let ready = status
                            .conditions
                            .unwrap_or_default()
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == crate::api::TRUE);
                        let phase = status.phase.unwrap_or_else(|| "Pending".into());
                        (
                            p.name_any(),
                            if ready {
                                format!("{phase}, ready")
                            } else {
                                phase
                            },
                        )
                    })
                    .collect(),
                revision,
            }
        })
        .collect())
}

/// Rows in columns, as kubectl prints them.
fn aligned(rows: Vec<Vec<String>>) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// The deployment log of a Rollout, oldest release first.
pub fn history_view(r: &Rollout) -> String {
    let history = r
        .status
        .as_ref()
        .map(|s| s.history.as_slice())
        .unwrap_or_default();
    if history.is_empty() {
        return format!("Rollout {} has no release in its log yet\n", r.name_any());
    }
    let header = [
        "REVISION", "RESULT", "STARTED", "DURATION", "BY", "IMAGES", "REASON",
    ];
    let mut rows = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    rows.extend(history.iter().map(|e| {
        let duration = e.ended_at.as_ref().map_or("-".to_string(), |end| {
            let secs = end.0.duration_since(e.started_at.0).as_secs().max(0) as u64;
            crate::api::Duration::from_secs(secs).to_string()
        });
        vec![
            e.revision.clone(),
            format!("{:?}", e.result),
            e.started_at.0.to_string(),
            duration,
            e.started_by.clone().unwrap_or_else(|| "-".into()),
            e.images.join(","),
            e.reason.clone().unwrap_or_default(),
        ]
    }));
    aligned(rows)
}

/// The status view: phase, traffic, steps, analysis, migrations, revisions, last decision.
pub fn status_view(
    r: &Rollout,
    migrations: &[(String, String)],
    revisions: &[RevisionRow],
) -> String {
    let s = r.status.clone().unwrap_or_default();
    let name = r.name_any();
    let mut out = String::new();
    let strategy = s.strategy.map_or("-".into(), |k| format!("{k:?}"));
    out.push_str(&format!("Rollout {name} ({strategy}): {:?}\n", s.phase));
    if let Some(m) = &s.message {
        out.push_str(&format!("  {m}\n"));
    }
    if let (Some(b), Some(spec)) = (&s.bake, &r.spec.bake) {
        out.push_str(&format!(
            "\nBake\n  {:?}: {} since {} for {} ({} kept to restore)\n",
            b.phase, b.revision, b.started_at.0, spec.duration, b.previous
        ));
        if let Some(m) = &b.message {
            out.push_str(&format!("  {m}\n"));
        }
    }
    if !r.spec.windows.is_empty() {
        out.push_str("\nWindows\n");
        for w in &r.spec.windows {
            let kind = match w.kind {
                crate::api::WindowKind::Allow => "allow",
                crate::api::WindowKind::Deny => "deny ",
            };
            out.push_str(&format!(
                "  {kind} {:?} for {} ({})\n",
                w.schedule,
                w.duration,
                w.time_zone.as_deref().unwrap_or("UTC")
            ));
        }
    }
    let stable = s.stable_revision.clone().unwrap_or_else(|| "-".into());
    let current = s.current_revision.clone().unwrap_or_else(|| "-".into());
    let weight = s.canary_weight.unwrap_or(0);
    out.push_str("\nTraffic\n");
    if stable == current {
        out.push_str(&format!("  {stable} (stable)  100%\n"));
    } else {
        out.push_str(&format!("  {stable} (stable)  {}%\n", 100 - weight));
        out.push_str(&format!("  {current} (new)     {weight}%\n"));
    }
    if let (Some(StrategyKind::Canary), Some(canary)) = (s.strategy, &r.spec.strategy.canary) {
        let n = canary.steps.len();
        let at = s.current_step_index.map(|i| i as usize);
        let done = if stable == current {
            n
        } else {
            at.unwrap_or(0)
        };
        out.push_str(&format!("\nSteps {} {done}/{n}\n", bar(done, n, 20)));
        for (i, step) in canary.steps.iter().enumerate() {
            let mark = match at {
                Some(a) if a == i && stable != current => ">",
                _ if i < done => "x",
                _ => " ",
            };
            let what = match step.action() {
                Some(StepAction::SetWeight(w)) => format!("setWeight {w}"),
                Some(StepAction::Pause(Some(d))) => format!("pause {d}"),
                Some(StepAction::Pause(None)) => "pause (until promoted)".into(),
                Some(StepAction::Analysis(a)) => format!(
                    "analysis {}",
                    a.templates
                        .iter()
                        .map(|t| format!("{} (template)", t.template_name))
                        .chain(a.metrics.iter().map(|m| m.name.clone()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some(StepAction::SetCanaryScale(scale)) => match scale {
                    crate::api::CanaryScale::Replicas(n) => format!("setCanaryScale {n} pods"),
                    crate::api::CanaryScale::Weight(w) => format!("setCanaryScale {w}% of pods"),
                    crate::api::CanaryScale::MatchTrafficWeight => {
                        "setCanaryScale matchTrafficWeight".into()
                    }
                },
                Some(StepAction::SetHeaderRoute(h)) if h.matches.is_empty() => {
                    format!("setHeaderRoute {} (removed)", h.name)
                }
                Some(StepAction::SetHeaderRoute(h)) => format!(
                    "setHeaderRoute {} ({} to the canary)",
                    h.name,
                    h.matches
                        .iter()
                        .map(|m| m.header_name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some(StepAction::SetMirrorRoute(m))
                    if m.percentage.is_none() && m.matches.is_empty() =>
                {
                    format!("setMirrorRoute {} (removed)", m.name)
                }
                Some(StepAction::SetMirrorRoute(m)) => format!(
                    "setMirrorRoute {} ({}% mirrored)",
                    m.name,
                    m.percentage.unwrap_or(100)
                ),
                None => "?".into(),
            };
            out.push_str(&format!("  [{mark}] {i}: {what}\n"));
        }
    }
    if !s.analysis.is_empty() {
        out.push_str("\nAnalysis\n");
        for run in &s.analysis {
            let verdict = match run.verdict {
                AnalysisVerdict::Running => "Running",
                AnalysisVerdict::Successful => "Successful",
                AnalysisVerdict::Inconclusive => "Inconclusive",
                AnalysisVerdict::Error => "Error",
                AnalysisVerdict::Failed => "Failed",
            };
            out.push_str(&format!(
                "  {}: {verdict}  (every measurement: kubectl get analysisrun {})\n",
                run.name,
                crate::analysis::history::run_name(&name, run)
            ));
            for m in &run.metrics {
                let last = m.measurements.last().map_or("-".to_string(), |x| {
                    format!(
                        "{} {:?}",
                        x.value.clone().unwrap_or_else(|| "-".into()),
                        x.outcome
                    )
                });
                out.push_str(&format!(
                    "    {}: {} measured ({} ok, {} failed, {} inconclusive, {} errors), last {last}\n",
                    m.name, m.count, m.successful, m.failed, m.inconclusive, m.error
                ));
            }
        }
    }
    if !migrations.is_empty() {
        out.push_str("\nMigrations\n");
        for (n, phase) in migrations {
            out.push_str(&format!("  {n}: {phase}\n"));
        }
    }
    if !revisions.is_empty() {
        out.push_str(&revision_tree(revisions));
    }
    // The decisions are these conditions; Available, Ready, Reconciling and Stalled follow
    // from them and would only repeat the newest one.
    let decisions = [
        crate::api::PROGRESSING,
        crate::api::PAUSED,
        crate::api::ABORTED,
        crate::api::INVALID_SPEC,
    ];
    let last = s
        .conditions
        .iter()
        .filter(|c| decisions.contains(&c.type_.as_str()) && c.status == crate::api::TRUE)
        .max_by_key(|c| c.last_transition_time.0);
    if let Some(c) = last {
        out.push_str(&format!(
            "\nLast decision: {} {} ({}){}\n",
            c.type_,
            c.status,
            c.reason,
            if c.message.is_empty() {
                String::new()
            } else {
                format!(": {}", c.message)
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_status_view_names_step_templates_and_each_runs_record() {
        let r: Rollout = serde_json::from_value(json!({
            "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "strategy": {"canary": {"steps": [{"setWeight": 50}, {"analysis": {
                    "templates": [{"templateName": "smoke-test", "clusterScope": true}],
                    "metrics": [{"name": "errors", "successCondition": "result < 1",
                        "prometheus": {"query": "errors"}}]}}]}}},
            "status": {"phase": "Healthy", "strategy": "Canary", "stableRevision": "abc", "currentRevision": "abc",
                "analysis": [{"name": "step-1", "revision": "abc",
                    "startedAt": "2026-12-02T10:00:00Z", "verdict": "Successful"}]}
        }))
        .expect("a rollout");
        let out = status_view(&r, &[], &[]);
        assert!(
            out.contains("1: analysis smoke-test (template), errors"),
            "{out}"
        );
        let record = crate::analysis::history::run_name(
            "web",
            &r.status.clone().unwrap_or_default().analysis[0],
        );
        assert!(
            out.contains(&format!(
                "step-1: Successful  (every measurement: kubectl get analysisrun {record})"
            )),
            "{out}"
        );
    }

    #[test]
    fn the_status_view_says_why_a_rollout_waits_and_lists_its_windows() {
        let r: Rollout = serde_json::from_value(json!({
            "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "windows": [{"kind": "Deny", "schedule": "0 18 * * FRI", "duration": "62h",
                    "timeZone": "Europe/Berlin"}, {"kind": "Allow", "schedule": "0 9 * * 1-5",
                    "duration": "8h"}],
                "strategy": {"canary": {"steps": [{"setWeight": 50}]}}},
            "status": {"phase": "Paused", "strategy": "Canary", "stableRevision": "abc",
                "currentRevision": "abc", "message": "revision def waits for a deployment window: \
                    deny window \"0 18 * * FRI\" (62h, Europe/Berlin) is open; the next window \
                    opens at 2030-01-07T07:00:00Z"}
        }))
        .expect("a rollout");
        let out = status_view(&r, &[], &[]);
        assert!(
            out.contains(
                "Rollout web (Canary): Paused\n  revision def waits for a deployment window"
            ),
            "{out}"
        );
        assert!(out.contains("opens at 2030-01-07T07:00:00Z"), "{out}");
        assert!(
            out.contains("Windows\n  deny  \"0 18 * * FRI\" for 62h (Europe/Berlin)\n  allow \"0 9 * * 1-5\" for 8h (UTC)\n"),
            "{out}"
        );
    }

    #[test]
    fn the_status_view_shows_the_bake() {
        let r: Rollout = serde_json::from_value(json!({
            "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "bake": {"duration": "4h"},
                "strategy": {"canary": {"steps": [{"setWeight": 50}]}}},
            "status": {"phase": "Healthy", "strategy": "Canary", "stableRevision": "def",
                "currentRevision": "def", "bake": {"revision": "def", "previous": "abc",
                "phase": "Baking", "startedAt": "2030-01-01T00:03:00Z"}}
        }))
        .expect("a rollout");
        let out = status_view(&r, &[], &[]);
        assert!(
            out.contains(
                "Bake\n  Baking: def since 2030-01-01T00:03:00Z for 4h (abc kept to restore)\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn the_history_view_lists_each_release_with_who_and_why() {
        let r: Rollout = serde_json::from_value(json!({
            "apiVersion": "cutover.dev/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "strategy": {"canary": {"steps": [{"setWeight": 50}]}}},
            "status": {"history": [
                {"revision": "abc", "images": ["web:1"], "startedAt": "2030-01-01T00:00:00Z",
                 "endedAt": "2030-01-01T00:12:30Z", "result": "Promoted", "startedBy": "argocd-controller"},
                {"revision": "def", "images": ["web:2"], "startedAt": "2030-01-02T00:00:00Z",
                 "endedAt": "2030-01-02T00:04:00Z", "result": "Aborted",
                 "reason": "step 2: error rate 8 %", "startedBy": "kubectl-edit"},
                {"revision": "ghi", "images": ["web:3"], "startedAt": "2030-01-03T00:00:00Z",
                 "result": "Progressing"}]}
        }))
        .expect("a rollout");
        let out = history_view(&r);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[0].starts_with("REVISION   RESULT"), "{out}");
        assert!(lines[1].contains("abc        Promoted      2030-01-01T00:00:00Z   12m30s     argocd-controller   web:1"), "{out}");
        assert!(
            lines[2].ends_with("web:2    step 2: error rate 8 %"),
            "{out}"
        );
        assert!(
            lines[3].contains("Progressing") && lines[3].contains(" -  "),
            "{out}"
        );
        let mut empty = r.clone();
        empty.status = None;
        assert_eq!(
            history_view(&empty),
            "Rollout web has no release in its log yet\n"
        );
    }
}
