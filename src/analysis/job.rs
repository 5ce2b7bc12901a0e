//! Job metrics: each measurement runs a Job (a smoke test). The Job is named after the
//! measurement it takes, so however often a reconcile looks, it is created once; Complete is
//! a successful measurement, Failed a failed one, and the pod's log tail goes with either.

use jiff::Timestamp;
use k8s_openapi::{
    api::{batch::v1::Job, core::v1::Pod},
    apimachinery::pkg::apis::meta::v1::OwnerReference,
};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::{Value, json};

use super::template::{self, TemplateContext, TemplateError};
use crate::api::{DEFAULT_JOB_TTL_SECONDS, FIELD_MANAGER, JobMetric};

/// Label naming the analysis run a Job measures for.
pub const LABEL_RUN: &str = "cutover.dev/analysis-run";
/// Label naming the metric a Job measures.
pub const LABEL_METRIC: &str = "cutover.dev/analysis-metric";
/// Label naming the object (Rollout or FeatureFlag) whose analysis it is.
pub const LABEL_OF: &str = "cutover.dev/analysis-of";

/// Longest Job name: the Job controller copies it into a label of each pod.
const MAX_NAME: usize = 63;

/// How a measurement's Job stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobResult {
    /// Created or still running: no measurement yet.
    Running {
        /// The Job.
        job: String,
    },
    /// Finished.
    Finished {
        /// The Job.
        job: String,
        /// Complete (true) or Failed (false).
        succeeded: bool,
        /// Why it failed (the Failed condition's reason and message).
        reason: Option<String>,
        /// The tail of its pod's log.
        log: Option<String>,
    },
}

/// The measurement a Job is run for.
pub struct Measurement<'a> {
    /// The object whose analysis it is (becomes the Job's owner).
    pub owner: &'a OwnerReference,
    /// Namespace of the object (and the Job).
    pub namespace: &'a str,
    /// The analysis run.
    pub run: &'a str,
    /// The revision analysed.
    pub revision: &'a str,
    /// The metric's name.
    pub metric: &'a str,
    /// Its due time.
    pub due: Timestamp,
}

/// Name of the Job of a measurement: the object and metric names (shortened) and a hash of
/// everything that tells one measurement from another.
pub fn job_name(m: &Measurement<'_>) -> String {
    let key = format!(
        "{}/{}/{}/{}/{}",
        m.owner.uid,
        m.run,
        m.revision,
        m.metric,
        m.due.as_second()
    );
    let hash = crate::rollout::revision::hash_text(&key);
    let room = MAX_NAME - hash.len() - 2;
    let object = shorten(&m.owner.name, room / 2);
    let metric = shorten(m.metric, room - object.len());
    format!("{object}-{metric}-{hash}")
}

/// `s` cut to at most `max` bytes, without a trailing dash (names are ASCII DNS labels).
fn shorten(s: &str, max: usize) -> &str {
    let cut = s.get(..max.min(s.len())).unwrap_or(s);
    cut.trim_end_matches(['-', '.'])
}

/// The Job of measurement `m`: the metric's Job with its placeholders filled in, owned by
/// the object, labelled with the run and metric, bounded by a deadline and kept for a while
/// after it finishes.
pub fn manifest(
    m: &Measurement<'_>,
    job: &JobMetric,
    placeholders: &TemplateContext,
) -> Result<Value, TemplateError> {
    let name = job_name(m);
    let mut template = serde_json::to_value(&job.spec.template).unwrap_or_else(|_| json!({}));
    render_containers(&mut template, placeholders)?;
    add_env(&mut template, placeholders);
    if template.pointer("/spec/restartPolicy").is_none() {
        template["spec"]["restartPolicy"] = json!("Never");
    }
    let mut labels = json!({LABEL_RUN: m.run, LABEL_METRIC: m.metric});
    if m.owner.name.len() <= 63 {
        labels[LABEL_OF] = json!(m.owner.name);
    }
    let (mut extra_labels, annotations) = job
        .metadata
        .as_ref()
        .map(|md| (md.labels.clone(), md.annotations.clone()))
        .unwrap_or_default();
    // The operator's labels win: they tell whose measurement the Job is.
    for key in [LABEL_RUN, LABEL_METRIC, LABEL_OF] {
        extra_labels.remove(key);
    }
    for (k, v) in extra_labels {
        labels[k] = json!(v);
    }
    Ok(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": m.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [m.owner],
        },
        "spec": {
            "backoffLimit": job.spec.backoff_limit.unwrap_or(0),
            "activeDeadlineSeconds": job.spec.active_deadline_seconds(),
            "ttlSecondsAfterFinished": job.spec.ttl_seconds_after_finished.unwrap_or(DEFAULT_JOB_TTL_SECONDS),
            "template": template,
        },
    }))
}

/// Fills placeholders into the containers' command, args and env values (the fields
/// `Metric::templated` lists, so validation checked the same ones).
fn render_containers(template: &mut Value, ctx: &TemplateContext) -> Result<(), TemplateError> {
    let Some(containers) = template
        .pointer_mut("/spec/containers")
        .and_then(Value::as_array_mut)
    else {
        return Ok(());
    };
    for c in containers {
        for field in ["command", "args"] {
            if let Some(list) = c.get_mut(field).and_then(Value::as_array_mut) {
                for v in list {
                    render_string(v, ctx)?;
                }
            }
        }
        if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
            for e in env {
                if let Some(v) = e.get_mut("value") {
                    render_string(v, ctx)?;
                }
            }
        }
    }
    Ok(())
}

/// What a smoke test needs to know, as environment variables of each container: the
/// Service to call, the revision it judges, and whose. A variable the author set stays.
fn add_env(template: &mut Value, ctx: &TemplateContext) {
    let Some(containers) = template
        .pointer_mut("/spec/containers")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    let mut vars = vec![
        ("CUTOVER_ROLLOUT", ctx.name.clone()),
        ("CUTOVER_NAMESPACE", ctx.namespace.clone()),
        ("CUTOVER_REVISION", ctx.canary_revision.clone()),
        ("CUTOVER_STABLE_REVISION", ctx.stable_revision.clone()),
    ];
    if let Some(service) = &ctx.service {
        vars.push(("CUTOVER_SERVICE", service.clone()));
    }
    for c in containers {
        let Some(c) = c.as_object_mut() else {
            continue;
        };
        let env = c.entry("env").or_insert_with(|| json!([]));
        let Some(env) = env.as_array_mut() else {
            continue;
        };
        for (name, value) in &vars {
            if !env.iter().any(|e| e["name"] == *name) {
                env.push(json!({"name": name, "value": value}));
            }
        }
    }
}

fn render_string(v: &mut Value, ctx: &TemplateContext) -> Result<(), TemplateError> {
    if let Value::String(s) = v {
        *s = template::render(s, ctx)?;
    }
    Ok(())
}

/// How a Job stands, from its conditions.
pub fn state(job: &Job) -> Option<(bool, Option<String>)> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let is_true = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    if is_true("Complete").is_some() {
        return Some((true, None));
    }
    let failed = is_true("Failed")?;
    let reason = match (&failed.reason, &failed.message) {
        (Some(r), Some(m)) => format!("{r}: {m}"),
        (Some(r), None) => r.clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => "Failed".into(),
    };
    Some((false, Some(reason)))
}

/// Creates the measurement's Job if it is not there yet, and reads how it stands.
pub async fn measure(
    client: &kube::Client,
    m: &Measurement<'_>,
    job: &JobMetric,
    placeholders: &TemplateContext,
) -> Result<JobResult, String> {
    let api: Api<Job> = Api::namespaced(client.clone(), m.namespace);
    let name = job_name(m);
    // A list by name: the operator reads Jobs by list and watch only.
    let by_name = ListParams::default().fields(&format!("metadata.name={name}"));
    let existing = api
        .list(&by_name)
        .await
        .map_err(|e| format!("reading Job {name}: {e}"))?
        .items
        .into_iter()
        .next();
    let Some(existing) = existing else {
        let manifest = manifest(m, job, placeholders).map_err(|e| e.to_string())?;
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&manifest),
        )
        .await
        .map_err(|e| format!("creating Job {name}: {e}"))?;
        tracing::info!(job = %name, namespace = %m.namespace, run = %m.run, metric = %m.metric, "analysis Job created");
        return Ok(JobResult::Running { job: name });
    };
    let Some((succeeded, reason)) = state(&existing) else {
        return Ok(JobResult::Running { job: name });
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), m.namespace);
    let selector = format!("batch.kubernetes.io/job-name={name}");
    let of_job = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let log = crate::migration::reconcile::log_tail(client, m.namespace, of_job).await;
    Ok(JobResult::Finished {
        job: name,
        succeeded,
        reason,
        log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(name: &str) -> OwnerReference {
        OwnerReference {
            api_version: "cutover.dev/v1alpha1".into(),
            kind: "Rollout".into(),
            name: name.into(),
            uid: "uid-1".into(),
            controller: Some(true),
            block_owner_deletion: None,
        }
    }

    fn measurement<'a>(owner: &'a OwnerReference, metric: &'a str, due: i64) -> Measurement<'a> {
        Measurement {
            owner,
            namespace: "shop",
            run: "step-1",
            revision: "abc",
            metric,
            due: Timestamp::from_second(due).unwrap_or_default(),
        }
    }

    fn smoke() -> JobMetric {
        serde_json::from_value(json!({
            "metadata": {"labels": {"team": "web", LABEL_RUN: "forged"}},
            "spec": {"template": {"spec": {"containers": [{
                "name": "smoke",
                "image": "curl",
                "args": ["http://{{ args.host }}/healthz", "--rev={{ rollout.canaryRevision }}"],
                "env": [{"name": "SVC", "value": "{{ rollout.name }}"},
                        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "t", "key": "k"}}}]
            }]}}}
        }))
        .unwrap_or_default()
    }

    fn context() -> TemplateContext {
        TemplateContext {
            args: [("host".to_string(), "web-canary".to_string())].into(),
            name: "web".into(),
            namespace: "shop".into(),
            canary_revision: "abc".into(),
            stable_revision: "old".into(),
            service: Some("web-canary.shop.svc".into()),
        }
    }

    #[test]
    fn a_measurement_has_one_name_and_another_measurement_another() {
        let o = owner("web");
        let a = job_name(&measurement(&o, "smoke", 100));
        assert_eq!(a, job_name(&measurement(&o, "smoke", 100)));
        assert_ne!(a, job_name(&measurement(&o, "smoke", 160)), "next due time");
        assert_ne!(a, job_name(&measurement(&o, "other", 100)));
        assert!(a.starts_with("web-smoke-"), "{a}");
    }

    #[test]
    fn long_names_are_shortened_to_a_valid_job_name() {
        let o = owner(&"a".repeat(200));
        let metric = format!("m-{}", "b".repeat(61));
        let name = job_name(&measurement(&o, &metric, 1));
        assert!(name.len() <= MAX_NAME, "{} bytes", name.len());
        assert!(!name.contains("--"), "{name}");
        let dashed = owner(&format!("{}-x", "a".repeat(24)));
        let name = job_name(&measurement(&dashed, "smoke", 1));
        assert!(!name.contains("--"), "{name}");
    }

    #[test]
    fn the_job_is_owned_labelled_bounded_and_has_its_placeholders_filled() {
        let o = owner("web");
        let m = measurement(&o, "smoke", 100);
        let job = manifest(&m, &smoke(), &context()).unwrap_or_default();
        assert_eq!(job["metadata"]["ownerReferences"][0]["name"], "web");
        assert_eq!(job["metadata"]["labels"][LABEL_RUN], "step-1", "not forged");
        assert_eq!(job["metadata"]["labels"]["team"], "web");
        assert_eq!(job["metadata"]["labels"][LABEL_OF], "web");
        assert_eq!(job["spec"]["backoffLimit"], 0);
        assert_eq!(job["spec"]["activeDeadlineSeconds"], 600);
        assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 3600);
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        let c = &pod["containers"][0];
        assert_eq!(c["args"][0], "http://web-canary/healthz");
        assert_eq!(c["args"][1], "--rev=abc");
        assert_eq!(c["env"][0]["value"], "web");
        assert_eq!(c["env"][1]["valueFrom"]["secretKeyRef"]["name"], "t");
    }

    #[test]
    fn a_smoke_test_is_told_the_service_and_the_revision_unless_its_author_said() {
        let o = owner("web");
        let mut metric = smoke();
        let env = |job: &Value, name: &str| {
            job["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_array()
                .and_then(|e| e.iter().find(|v| v["name"] == name).cloned())
                .map(|v| v["value"].clone())
        };
        let job = manifest(&measurement(&o, "smoke", 1), &metric, &context()).unwrap_or_default();
        assert_eq!(
            env(&job, "CUTOVER_SERVICE"),
            Some(json!("web-canary.shop.svc"))
        );
        assert_eq!(env(&job, "CUTOVER_REVISION"), Some(json!("abc")));
        assert_eq!(env(&job, "CUTOVER_STABLE_REVISION"), Some(json!("old")));
        assert_eq!(env(&job, "CUTOVER_ROLLOUT"), Some(json!("web")));
        assert_eq!(env(&job, "CUTOVER_NAMESPACE"), Some(json!("shop")));
        // The author's own value stays; no Service, no variable.
        if let Some(p) = metric.spec.template.spec.as_mut() {
            p.containers[0].env.get_or_insert_default().push(
                serde_json::from_value(json!({"name": "CUTOVER_SERVICE", "value": "mine"}))
                    .unwrap_or_default(),
            );
        }
        let mut ctx = context();
        let job = manifest(&measurement(&o, "smoke", 1), &metric, &ctx).unwrap_or_default();
        assert_eq!(env(&job, "CUTOVER_SERVICE"), Some(json!("mine")));
        ctx.service = None;
        let job = manifest(&measurement(&o, "smoke", 1), &smoke(), &ctx).unwrap_or_default();
        assert_eq!(env(&job, "CUTOVER_SERVICE"), None);
    }

    #[test]
    fn a_placeholder_naming_no_arg_is_an_error_not_an_empty_string() {
        let o = owner("web");
        let mut ctx = context();
        ctx.args.clear();
        let err = manifest(&measurement(&o, "smoke", 1), &smoke(), &ctx);
        assert_eq!(err, Err(TemplateError::MissingArg("host".into())));
    }

    #[test]
    fn a_job_stands_by_its_complete_or_failed_condition() {
        let job = |conditions: Value| -> Job {
            serde_json::from_value(
                json!({"metadata": {"name": "j"}, "status": {"conditions": conditions}}),
            )
            .unwrap_or_default()
        };
        assert_eq!(state(&Job::default()), None, "no status: running");
        assert_eq!(state(&job(json!([]))), None);
        assert_eq!(
            state(&job(json!([{"type": "Complete", "status": "True"}]))),
            Some((true, None))
        );
        assert_eq!(
            state(&job(
                json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}])
            )),
            Some((
                false,
                Some("BackoffLimitExceeded: Job has reached the specified backoff limit".into())
            ))
        );
        assert_eq!(
            state(&job(
                json!([{"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "False"}])
            )),
            None,
            "a Job about to fail is not yet Failed"
        );
    }
}
