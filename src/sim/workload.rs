//! The workload simulator: stands in for kube-controller-manager and the kubelets.
//! Deployments get pods that become ready after a delay, Jobs run pods that succeed or fail
//! as annotated, Services get EndpointSlices of their ready pods.
//!
//! Pod template annotations steer it:
//! - `sim.cutover.dev/ready-after: 5s` — time until a pod is ready (default 2s);
//! - `sim.cutover.dev/never-ready: "true"` — pods run but never become ready;
//! - `sim.cutover.dev/crash-loop: "true"` — pods crash-loop and never become ready;
//! - `sim.cutover.dev/duration: 30s` — how long a Job's pod runs (default 2s);
//! - `sim.cutover.dev/fail-attempts: "2"` (or `"always"`) — the first N Job pods fail;
//! - `sim.cutover.dev/log: "..."` — the text a pod's log subresource returns.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use jiff::Timestamp;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::resources::ResourceType;
use super::selector::LabelSelector;
use super::store::{Filter, Propagation, Store, Subresource, WatchEvent, WriteOptions, name_of};

/// Annotation: time until a pod is ready.
pub const READY_AFTER: &str = "sim.cutover.dev/ready-after";
/// Annotation: pods never become ready.
pub const NEVER_READY: &str = "sim.cutover.dev/never-ready";
/// Annotation: pods crash-loop.
pub const CRASH_LOOP: &str = "sim.cutover.dev/crash-loop";
/// Annotation: how long a Job pod runs.
pub const DURATION: &str = "sim.cutover.dev/duration";
/// Annotation: how many Job pods fail before one succeeds (`always` for all).
pub const FAIL_ATTEMPTS: &str = "sim.cutover.dev/fail-attempts";
/// Annotation: a pod's log text.
pub const LOG: &str = "sim.cutover.dev/log";
/// Internal annotation: which attempt of its Job a pod is.
const ATTEMPT: &str = "sim.cutover.dev/attempt";
/// Internal annotation: when a pod becomes ready or finishes.
const DUE_AT: &str = "sim.cutover.dev/due-at";
/// Label carrying the pod-template hash, as kube-controller-manager sets it.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Defaults of the workload simulator.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    /// Time until a new pod is ready.
    pub ready_after: Duration,
    /// Time a Job pod runs.
    pub job_duration: Duration,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            ready_after: Duration::from_secs(2),
            job_duration: Duration::from_secs(2),
        }
    }
}

const MANAGER: &str = "kube-controller-manager";

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Work {
    Deployment(String, String),
    Job(String, String),
    Endpoints(String),
}

/// Runs the simulator until `shutdown`.
pub async fn run(store: Arc<Store>, config: WorkloadConfig, shutdown: CancellationToken) {
    let sim = Simulator {
        store: store.clone(),
        config,
    };
    let mut events = store.subscribe();
    // The last change taken in: after lagging behind the live feed, the simulator catches up
    // from the history (as a watch does) instead of looking at every object again.
    let mut seen = store.current_rv();
    let mut dirty: BTreeSet<Work> = sim.everything();
    let mut timers: BTreeMap<Timestamp, BTreeSet<Work>> = BTreeMap::new();
    loop {
        for work in std::mem::take(&mut dirty) {
            if let Some(due) = sim.reconcile(&work) {
                timers.entry(due).or_default().insert(work);
            }
        }
        let next = timers.keys().next().copied();
        let sleep = next
            .map(|due| store.clock().until(due))
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            received = events.recv() => {
                match received {
                    Ok(event) => sim.take(&event, &mut seen, &mut dirty),
                    Err(RecvError::Lagged(_)) => sim.catch_up(&mut seen, &mut dirty),
                    Err(RecvError::Closed) => return,
                }
                // Take every change already waiting, so a burst is worked through once.
                loop {
                    match events.try_recv() {
                        Ok(event) => sim.take(&event, &mut seen, &mut dirty),
                        Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                            sim.catch_up(&mut seen, &mut dirty)
                        }
                        Err(_) => break,
                    }
                }
            },
            _ = tokio::time::sleep(sleep) => {
                let now = store.clock().now();
                let due: Vec<Timestamp> = timers.range(..=now).map(|(t, _)| *t).collect();
                for t in due {
                    if let Some(works) = timers.remove(&t) {
                        dirty.extend(works);
                    }
                }
            }
        }
    }
}

struct Simulator {
    store: Arc<Store>,
    config: WorkloadConfig,
}

impl Simulator {
    fn rt(&self, group: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.store.resolve(group, "v1", plural)
    }

    fn list(&self, group: &str, plural: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some(rt) = self.rt(group, plural) else {
            return Vec::new();
        };
        let filter = Filter {
            namespace: namespace.map(str::to_string),
            ..Default::default()
        };
        self.store
            .list(&rt, &filter, None, None)
            .map(|p| p.items)
            .unwrap_or_default()
    }

    /// Every object it simulates, by name only: after falling behind the history it looks at
    /// each again, and reading them all at once would hold the whole store parsed.
    fn everything(&self) -> BTreeSet<Work> {
        let names = |group, plural| {
            self.rt(group, plural)
                .map(|rt| self.store.names(&rt))
                .unwrap_or_default()
        };
        let mut all = BTreeSet::new();
        for (ns, name) in names("apps", "deployments") {
            all.insert(Work::Deployment(ns, name));
        }
        for (ns, name) in names("batch", "jobs") {
            all.insert(Work::Job(ns, name));
        }
        for (ns, _) in names("", "services") {
            all.insert(Work::Endpoints(ns));
        }
        all
    }

    /// Takes in one change, unless it was already taken in while catching up.
    fn take(&self, event: &WatchEvent, seen: &mut u64, dirty: &mut BTreeSet<Work>) {
        if event.rv <= *seen {
            return;
        }
        *seen = event.rv;
        // Only the kinds it simulates are parsed: most changes are Rollouts and Events.
        if matches!(
            event.plural.as_str(),
            "deployments" | "jobs" | "services" | "pods"
        ) {
            dirty.extend(self.affected(&event.plural, &event.namespace, &event.object()));
        }
    }

    /// Takes in the changes missed while lagging, from the history; every object when the
    /// history no longer reaches back that far.
    fn catch_up(&self, seen: &mut u64, dirty: &mut BTreeSet<Work>) {
        match self.store.changes_after(*seen) {
            Ok(missed) => {
                for event in missed {
                    self.take(&event, seen, dirty);
                }
            }
            Err(_) => {
                *seen = self.store.current_rv();
                dirty.extend(self.everything());
            }
        }
    }

    fn affected(&self, plural: &str, namespace: &str, object: &Value) -> Vec<Work> {
        match plural {
            "deployments" => vec![Work::Deployment(namespace.into(), name_of(object))],
            "jobs" => vec![Work::Job(namespace.into(), name_of(object))],
            "services" => vec![Work::Endpoints(namespace.into())],
            "pods" => {
                let mut work = vec![Work::Endpoints(namespace.into())];
                for owner in object
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let name = owner
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    match owner.get("kind").and_then(Value::as_str) {
                        Some("Deployment") => work.push(Work::Deployment(namespace.into(), name)),
                        Some("Job") => work.push(Work::Job(namespace.into(), name)),
                        _ => {}
                    }
                }
                work
            }
            _ => Vec::new(),
        }
    }

    /// Brings one object's simulated world up to date; returns when to look again.
    fn reconcile(&self, work: &Work) -> Option<Timestamp> {
        match work {
            Work::Deployment(ns, name) => self.deployment(ns, name),
            Work::Job(ns, name) => self.job(ns, name),
            Work::Endpoints(ns) => {
                self.endpoints(ns);
                None
            }
        }
    }

    fn opts() -> WriteOptions {
        WriteOptions {
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        }
    }

    fn owned_pods(&self, ns: &str, owner: &Value) -> Vec<Value> {
        let uid = owner
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let selector = match owner.get("kind").and_then(Value::as_str) {
            Some("Job") => format!("batch.kubernetes.io/job-name={}", name_of(owner)),
            _ => owner
                .pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default(),
        };
        // The owner index names exactly the pods with this owner; like the ReplicaSet
        // controller, count only those its selector still matches (all of them when the
        // selector does not parse).
        let Some(rt) = self.rt("", "pods") else {
            return Vec::new();
        };
        let filter = Filter {
            namespace: Some(ns.to_string()),
            labels: LabelSelector::parse(&selector).unwrap_or_default(),
            ..Default::default()
        };
        self.store.owned(&rt, uid, &filter)
    }

    fn create_pod(&self, ns: &str, owner: &Value, pod: NewPod<'_>) {
        let Some(pods) = self.rt("", "pods") else {
            return;
        };
        let template = owner
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(json!({}));
        let mut labels = template
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        labels[POD_TEMPLATE_HASH] = json!(pod.hash);
        if pod.owner_kind == "Job" {
            // As the Job controller labels its pods.
            labels["batch.kubernetes.io/job-name"] = json!(name_of(owner));
            labels["job-name"] = json!(name_of(owner));
        }
        let mut annotations = template
            .pointer("/metadata/annotations")
            .cloned()
            .unwrap_or(json!({}));
        if let Some(due) = pod.due {
            annotations[DUE_AT] = json!(due.to_string());
        }
        if let Some(attempt) = pod.attempt {
            annotations[ATTEMPT] = json!(attempt.to_string());
        }
        let seq = self.store.current_rv();
        let object = json!({
            "metadata": {"name": pod.name, "namespace": ns, "labels": labels, "annotations": annotations,
                "ownerReferences": [{"apiVersion": owner["apiVersion"], "kind": pod.owner_kind, "name": name_of(owner),
                    "uid": owner.pointer("/metadata/uid"), "controller": true, "blockOwnerDeletion": true}]},
            "spec": template.get("spec").cloned().unwrap_or(json!({})),
            "status": pod_status(pod.phase, false, seq, &self.now()),
        });
        if let Err(error) = self.store.create(&pods, ns, object, &Self::opts()) {
            tracing::debug!(%error, "simulated pod not created");
        }
    }

    fn now(&self) -> String {
        self.store
            .clock()
            .now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    }

    fn set_pod(&self, ns: &str, pod: &Value, phase: &str, ready: bool) {
        let Some(pods) = self.rt("", "pods") else {
            return;
        };
        let current_phase = pod.pointer("/status/phase").and_then(Value::as_str);
        if current_phase == Some(phase) && pod_ready(pod) == ready {
            return;
        }
        let seq = self.store.current_rv();
        let mut status = pod_status(phase, ready, seq, &self.now());
        status["podIP"] = pod
            .pointer("/status/podIP")
            .cloned()
            .unwrap_or(status["podIP"].clone());
        if crash_looping(pod) {
            status["containerStatuses"] = json!([{"name": "main", "ready": false, "restartCount": 1,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]);
        }
        let patch = json!({"status": status});
        let _ = self.store.patch(
            &pods,
            ns,
            &name_of(pod),
            super::store::PatchKind::Merge,
            &patch,
            Subresource::Status,
            &Self::opts(),
        );
    }

    fn deployment(&self, ns: &str, name: &str) -> Option<Timestamp> {
        let rt = self.rt("apps", "deployments")?;
        let deploy = self.store.get(&rt, ns, name).ok()?;
        if deploy.pointer("/metadata/deletionTimestamp").is_some() {
            return None;
        }
        let hash = template_hash(deploy.pointer("/spec/template").unwrap_or(&Value::Null));
        let desired = deploy
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(0) as usize;
        let pods_rt = self.rt("", "pods")?;
        let mut pods = self.owned_pods(ns, &deploy);
        // A changed template replaces every pod (each cutover revision has its own Deployment).
        for stale in pods.iter().filter(|p| {
            p.pointer("/metadata/labels/pod-template-hash")
                .and_then(Value::as_str)
                != Some(hash.as_str())
        }) {
            let _ = self
                .store
                .delete(&pods_rt, ns, &name_of(stale), Propagation::Background, None);
        }
        pods.retain(|p| {
            p.pointer("/metadata/labels/pod-template-hash")
                .and_then(Value::as_str)
                == Some(hash.as_str())
        });
        while pods.len() > desired {
            if let Some(extra) = pods.pop() {
                let _ = self.store.delete(
                    &pods_rt,
                    ns,
                    &name_of(&extra),
                    Propagation::Background,
                    None,
                );
            }
        }
        let now = self.store.clock().now();
        let annotations = deploy
            .pointer("/spec/template/metadata/annotations")
            .cloned()
            .unwrap_or(json!({}));
        let never =
            annotation_true(&annotations, NEVER_READY) || annotation_true(&annotations, CRASH_LOOP);
        let delay =
            annotation_duration(&annotations, READY_AFTER).unwrap_or(self.config.ready_after);
        for i in pods.len()..desired {
            let due =
                (!never).then(|| now + jiff::SignedDuration::try_from(delay).unwrap_or_default());
            let pod_name = format!(
                "{name}-{}-{}",
                &hash[..hash.len().min(10)],
                suffix(self.store.current_rv() + i as u64)
            );
            let pod = NewPod {
                owner_kind: "Deployment",
                name: pod_name,
                hash: &hash,
                phase: "Pending",
                due,
                attempt: None,
            };
            self.create_pod(ns, &deploy, pod);
        }
        let mut next_due = None;
        let pods = self.owned_pods(ns, &deploy);
        let mut ready = 0;
        for pod in &pods {
            let is_ready = pod_ready(pod);
            match due_at(pod) {
                _ if is_ready => {}
                Some(due) if due <= now => self.set_pod(ns, pod, "Running", true),
                Some(due) => next_due = Some(next_due.map_or(due, |n: Timestamp| n.min(due))),
                None if crash_looping(pod) || never_ready(pod) => {
                    self.set_pod(ns, pod, "Running", false)
                }
                None => {}
            }
        }
        for pod in self.owned_pods(ns, &deploy) {
            if pod_ready(&pod) {
                ready += 1;
            }
        }
        let status = deployment_status(&deploy, pods.len(), ready, desired, &self.now());
        let _ = self.store.patch(
            &rt,
            ns,
            name,
            super::store::PatchKind::Merge,
            &json!({"status": status}),
            Subresource::Status,
            &Self::opts(),
        );
        next_due
    }

    fn job(&self, ns: &str, name: &str) -> Option<Timestamp> {
        let rt = self.rt("batch", "jobs")?;
        let job = self.store.get(&rt, ns, name).ok()?;
        if job.pointer("/metadata/deletionTimestamp").is_some() {
            return None;
        }
        if job_finished(&job) {
            return self.expire(&rt, ns, name, &job);
        }
        let now = self.store.clock().now();
        let annotations = job
            .pointer("/spec/template/metadata/annotations")
            .cloned()
            .unwrap_or(json!({}));
        let run_for =
            annotation_duration(&annotations, DURATION).unwrap_or(self.config.job_duration);
        let fail_attempts = match annotations.get(FAIL_ATTEMPTS).and_then(Value::as_str) {
            Some("always") => usize::MAX,
            Some(n) => n.parse().unwrap_or(0),
            None => 0,
        };
        let backoff_limit = job
            .pointer("/spec/backoffLimit")
            .and_then(Value::as_i64)
            .unwrap_or(6)
            .max(0) as usize;
        let start = job
            .pointer("/status/startTime")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<Timestamp>().ok())
            .unwrap_or(now);
        let deadline = job
            .pointer("/spec/activeDeadlineSeconds")
            .and_then(Value::as_i64)
            .map(|s| start + jiff::SignedDuration::from_secs(s));
        let pods_rt = self.rt("", "pods")?;
        let pods = self.owned_pods(ns, &job);
        let hash = template_hash(job.pointer("/spec/template").unwrap_or(&Value::Null));
        // Finish running pods whose time has come.
        for (i, pod) in pods.iter().enumerate() {
            if pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
                && let Some(due) = due_at(pod)
                && due <= now
            {
                let attempt = attempt_of(pod).unwrap_or(i);
                self.set_pod(
                    ns,
                    pod,
                    if attempt < fail_attempts {
                        "Failed"
                    } else {
                        "Succeeded"
                    },
                    false,
                );
            }
        }
        let pods = self.owned_pods(ns, &job);
        let phase = |p: &Value| {
            p.pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count();
        let failed = pods.iter().filter(|p| phase(p) == "Failed").count();
        let active: Vec<&Value> = pods
            .iter()
            .filter(|p| phase(p) == "Running" || phase(p) == "Pending")
            .collect();
        let mut status = json!({"startTime": start.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(), "active": active.len(),
            "succeeded": succeeded, "failed": failed});
        let mut next_due = None;
        if succeeded > 0 {
            status["completionTime"] = json!(self.now());
            status["conditions"] = json!([
                condition(
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    &self.now()
                ),
                condition(
                    "Complete",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    &self.now()
                )
            ]);
        } else if deadline.is_some_and(|d| d <= now) {
            for pod in &active {
                let _ =
                    self.store
                        .delete(&pods_rt, ns, &name_of(pod), Propagation::Background, None);
            }
            status["active"] = json!(0);
            status["conditions"] = json!([
                condition(
                    "FailureTarget",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                    &self.now()
                ),
                condition(
                    "Failed",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                    &self.now()
                )
            ]);
        } else if failed > backoff_limit {
            status["conditions"] = json!([
                condition(
                    "FailureTarget",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    &self.now()
                ),
                condition(
                    "Failed",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    &self.now()
                )
            ]);
        } else {
            if active.is_empty() {
                let attempt = pods.len();
                let due = now + jiff::SignedDuration::try_from(run_for).unwrap_or_default();
                let pod_name = format!("{name}-{}", suffix(self.store.current_rv()));
                let pod = NewPod {
                    owner_kind: "Job",
                    name: pod_name,
                    hash: &hash,
                    phase: "Running",
                    due: Some(due),
                    attempt: Some(attempt),
                };
                self.create_pod(ns, &job, pod);
                next_due = Some(due);
            } else {
                next_due = active.iter().filter_map(|p| due_at(p)).min();
            }
            if let Some(d) = deadline {
                next_due = Some(next_due.map_or(d, |n: Timestamp| n.min(d)));
            }
            status["active"] = json!(active.len().max(1));
        }
        let _ = self.store.patch(
            &rt,
            ns,
            name,
            super::store::PatchKind::Merge,
            &json!({"status": status}),
            Subresource::Status,
            &Self::opts(),
        );
        next_due
    }

    /// ttlSecondsAfterFinished: a finished Job is deleted (with its pods) once its time is up.
    fn expire(
        &self,
        rt: &Arc<ResourceType>,
        ns: &str,
        name: &str,
        job: &Value,
    ) -> Option<Timestamp> {
        let ttl = job.pointer("/spec/ttlSecondsAfterFinished")?.as_i64()?;
        let finished = job
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| c["status"] == "True" && (c["type"] == "Complete" || c["type"] == "Failed"))
            .filter_map(|c| c["lastTransitionTime"].as_str()?.parse::<Timestamp>().ok())
            .next()?;
        let due = finished + jiff::SignedDuration::from_secs(ttl.max(0));
        if due <= self.store.clock().now() {
            let _ = self
                .store
                .delete(rt, ns, name, Propagation::Background, None);
            None
        } else {
            Some(due)
        }
    }

    fn endpoints(&self, ns: &str) {
        let Some(slices) = self.rt("discovery.k8s.io", "endpointslices") else {
            return;
        };
        let services = self.list("", "services", Some(ns));
        if services.is_empty() {
            return;
        }
        let pods = self.list("", "pods", Some(ns));
        for svc in services {
            let Some(selector) = svc.pointer("/spec/selector").and_then(Value::as_object) else {
                continue;
            };
            let endpoints: Vec<Value> = pods
                .iter()
                .filter(|p| selector.iter().all(|(k, v)| p.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v)))
                .filter(|p| pod_ready(p))
                .map(|p| json!({"addresses": [p.pointer("/status/podIP").cloned().unwrap_or(json!(""))],
                    "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": name_of(p), "namespace": ns}}))
                .collect();
            let svc_name = name_of(&svc);
            let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": format!("{svc_name}-sim"), "namespace": ns, "labels": {"kubernetes.io/service-name": svc_name},
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": svc_name, "uid": svc.pointer("/metadata/uid"), "controller": true}]},
                "addressType": "IPv4", "endpoints": endpoints, "ports": svc.pointer("/spec/ports").cloned().unwrap_or(json!([]))});
            let _ = self.store.patch(
                &slices,
                ns,
                &format!("{svc_name}-sim"),
                super::store::PatchKind::Apply,
                &slice,
                Subresource::Main,
                &WriteOptions {
                    field_manager: Some(MANAGER.into()),
                    force: true,
                    ..Default::default()
                },
            );
        }
    }
}

/// A pod the simulator creates for a Deployment or a Job.
struct NewPod<'a> {
    owner_kind: &'a str,
    name: String,
    hash: &'a str,
    phase: &'a str,
    due: Option<Timestamp>,
    attempt: Option<usize>,
}

fn condition(type_: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": type_, "status": "True", "reason": reason, "message": message, "lastTransitionTime": now, "lastProbeTime": now})
}

fn pod_status(phase: &str, ready: bool, seq: u64, now: &str) -> Value {
    let ready_s = if ready { "True" } else { "False" };
    json!({
        "phase": phase,
        "podIP": format!("10.244.{}.{}", (seq / 250) % 250, seq % 250 + 1),
        "conditions": [{"type": "Ready", "status": ready_s, "lastTransitionTime": now}],
    })
}

fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn due_at(pod: &Value) -> Option<Timestamp> {
    pod.pointer("/metadata/annotations")?
        .get(DUE_AT)?
        .as_str()?
        .parse()
        .ok()
}

fn attempt_of(pod: &Value) -> Option<usize> {
    pod.pointer("/metadata/annotations")?
        .get("sim.cutover.dev/attempt")?
        .as_str()?
        .parse()
        .ok()
}

fn crash_looping(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations")
        .is_some_and(|a| annotation_true(a, CRASH_LOOP))
}

fn never_ready(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations")
        .is_some_and(|a| annotation_true(a, NEVER_READY))
}

fn annotation_true(annotations: &Value, key: &str) -> bool {
    annotations.get(key).and_then(Value::as_str) == Some("true")
}

fn annotation_duration(annotations: &Value, key: &str) -> Option<Duration> {
    annotations
        .get(key)?
        .as_str()?
        .parse::<crate::api::Duration>()
        .ok()
        .map(|d| d.as_std())
}

fn job_finished(job: &Value) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True"
            })
        })
}

fn deployment_status(
    deploy: &Value,
    replicas: usize,
    ready: usize,
    desired: usize,
    now: &str,
) -> Value {
    let generation = deploy
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    let available = ready >= desired;
    let previous: Vec<Value> = deploy
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let keep_time = |type_: &str, status: &str| {
        previous
            .iter()
            .find(|c| c["type"] == type_ && c["status"] == status)
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or(json!(now))
    };
    let (avail_s, prog_reason) = if available {
        ("True", "NewReplicaSetAvailable")
    } else {
        ("False", "ReplicaSetUpdated")
    };
    json!({
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "unavailableReplicas": desired.saturating_sub(ready),
        "conditions": [
            {"type": "Available", "status": avail_s, "reason": if available { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
             "message": format!("{ready} of {desired} replicas available"), "lastTransitionTime": keep_time("Available", avail_s), "lastUpdateTime": keep_time("Available", avail_s)},
            {"type": "Progressing", "status": "True", "reason": prog_reason, "message": "",
             "lastTransitionTime": keep_time("Progressing", "True"), "lastUpdateTime": keep_time("Progressing", "True")},
        ],
    })
}

/// A stable short hash of a pod template (FNV-1a over its canonical JSON).
pub fn template_hash(template: &Value) -> String {
    let text = template.to_string();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let alphabet = b"bcdfghjklmnpqrstvwxz2456789";
    (0..10)
        .map(|_| {
            let c = alphabet[(hash % alphabet.len() as u64) as usize] as char;
            hash /= alphabet.len() as u64;
            c
        })
        .collect()
}

fn suffix(seed: u64) -> String {
    template_hash(&json!(seed))[..5].to_string()
}
