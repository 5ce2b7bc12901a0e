//! The permissions the operator needs, in one place: the Helm chart's ClusterRole and the
//! kustomize config are generated from it, and a test checks that every API call the
//! controllers make is granted by it — and that nothing else is.

use serde::Serialize;

/// One RBAC rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// API groups.
    pub api_groups: Vec<&'static str>,
    /// Resources (with subresources as `kind/sub`).
    pub resources: Vec<&'static str>,
    /// Verbs.
    pub verbs: Vec<&'static str>,
}

fn rule(group: &'static str, resources: &[&'static str], verbs: &[&'static str]) -> Rule {
    Rule {
        api_groups: vec![group],
        resources: resources.to_vec(),
        verbs: verbs.to_vec(),
    }
}

/// The rules the controllers need; `secrets` grants reading Secrets (analysis credentials
/// and addresses), which a platform may leave out when no metric uses them.
pub fn rules(secrets: bool) -> Vec<Rule> {
    let mut rules = vec![
        // patch: the finalizer of a Rollout adopting a Deployment.
        rule("cutover.dev", &["rollouts"], &["list", "watch", "patch"]),
        rule(
            "cutover.dev",
            &["migrationjobs", "featureflags"],
            &["list", "watch", "patch"],
        ),
        // Read only: templates are written by people, never by the operator.
        rule(
            "cutover.dev",
            &["analysistemplates", "clusteranalysistemplates"],
            &["list", "watch"],
        ),
        rule(
            "cutover.dev",
            &[
                "rollouts/status",
                "migrationjobs/status",
                "featureflags/status",
                "analysisruns/status",
            ],
            &["patch"],
        ),
        // The records of analysis runs: read before each write (they are not watched).
        rule(
            "cutover.dev",
            &["analysisruns"],
            &["get", "create", "patch"],
        ),
        // Server-side apply of an object that does not exist yet creates it, and the
        // apiserver authorizes that as `create`.
        rule(
            "apps",
            &["deployments"],
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        rule("apps", &["deployments/scale"], &["patch"]),
        // No `get` on the watched kinds: reads come from watch caches, and a read past a
        // cache is a list by name.
        rule("", &["services"], &["list", "watch", "patch"]),
        rule(
            "",
            &["configmaps"],
            &["get", "list", "watch", "create", "patch"],
        ),
        rule("", &["pods"], &["list", "watch"]),
        // The freeze annotation of the namespaces served.
        rule("", &["namespaces"], &["list", "watch"]),
        rule("", &["pods/log"], &["get"]),
        rule(
            "batch",
            &["jobs"],
            &["list", "watch", "create", "patch", "delete"],
        ),
        rule(
            "gateway.networking.k8s.io",
            &["httproutes", "grpcroutes"],
            &["list", "watch", "patch"],
        ),
        // Before a mirror route is written: can the route's gateways mirror at all?
        rule(
            "gateway.networking.k8s.io",
            &["gateways", "gatewayclasses"],
            &["list"],
        ),
        rule("events.k8s.io", &["events"], &["create"]),
        rule(
            "coordination.k8s.io",
            &["leases"],
            &["get", "create", "update"],
        ),
    ];
    if secrets {
        rules.push(rule("", &["secrets"], &["get"]));
    }
    rules
}

/// Whether the rules grant `verb` on `resource` of `group`.
pub fn grants(rules: &[Rule], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        r.api_groups.contains(&group) && r.resources.contains(&resource) && r.verbs.contains(&verb)
    })
}

/// The rules as the YAML list of a ClusterRole's `rules:`.
pub fn rules_yaml(secrets: bool) -> String {
    crate::yaml::to_string(&rules(secrets))
}
