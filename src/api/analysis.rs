//! The analysis spec shared by Rollouts (steps, background, blue-green promotion) and
//! FeatureFlags, and the measurement records kept in their status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::Duration;

/// Default time between two measurements of a metric.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Default consecutive errors tolerated before a metric's verdict is Error.
pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: u32 = 4;
/// Default Prometheus request timeout.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many measurements per metric are kept in status.
pub const MEASUREMENTS_KEPT: usize = 10;

/// Metrics measured on an interval whose outcomes decide promote, pause or abort.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("(has(self.metrics) && size(self.metrics) > 0) || (has(self.templates) && size(self.templates) > 0)").message("an analysis needs metrics, templates or both"))]
pub struct AnalysisSpec {
    /// AnalysisTemplates and ClusterAnalysisTemplates whose metrics this analysis measures,
    /// merged with the inline `metrics`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub templates: Vec<TemplateRef>,
    /// Metrics to measure. The analysis takes the worst verdict of its metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub metrics: Vec<Metric>,
    /// Values for `{{ args.NAME }}` placeholders in the metrics' queries; they override the
    /// templates' defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub args: Vec<AnalysisArg>,
}

/// A reference to a template whose metrics an analysis measures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRef {
    /// Name of the AnalysisTemplate (in the object's namespace) or ClusterAnalysisTemplate.
    #[schemars(length(min = 1, max = 253))]
    pub template_name: String,
    /// The template is a ClusterAnalysisTemplate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_scope: bool,
}

impl TemplateRef {
    /// The template's kind and name, as messages name it.
    pub fn describe(&self) -> String {
        let kind = if self.cluster_scope {
            "ClusterAnalysisTemplate"
        } else {
            "AnalysisTemplate"
        };
        format!("{kind} {:?}", self.template_name)
    }
}

/// A named value substituted into queries. In a template, an arg without a value must be
/// given by every analysis that uses the template.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!(has(self.value) && has(self.valueFrom))").message("set value or valueFrom, not both"))]
pub struct AnalysisArg {
    /// Name used in placeholders as `{{ args.NAME }}`.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[A-Za-z_][A-Za-z0-9_-]*$")
    )]
    pub name: String,
    /// The value substituted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub value: Option<String>,
    /// Where the value comes from instead: a Secret, a field of the object, or a revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ArgValueFrom>,
}

impl AnalysisArg {
    /// An arg with a literal value.
    pub fn literal(name: &str, value: &str) -> Self {
        AnalysisArg {
            name: name.to_string(),
            value: Some(value.to_string()),
            value_from: None,
        }
    }
    /// Whether the arg says where its value comes from.
    pub fn is_given(&self) -> bool {
        self.value.is_some() || self.value_from.is_some()
    }
}

/// Where an arg's value comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("[has(self.secretKeyRef), has(self.fieldRef), has(self.podTemplateHashValue)].filter(x, x).size() == 1").message("set exactly one of secretKeyRef, fieldRef or podTemplateHashValue"))]
pub struct ArgValueFrom {
    /// A key of a Secret in the object's namespace, read at each measurement and never
    /// written into status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// A field of the object whose analysis this is, e.g. `metadata.labels['app']`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<FieldRef>,
    /// The revision hash of the stable revision or of the one under analysis (`Latest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template_hash_value: Option<RevisionValue>,
}

/// A path to a field of an object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    /// Dotted path with `['key']` or `[index]` selectors, e.g. `metadata.labels['app']`.
    #[schemars(length(min = 1, max = 512))]
    pub field_path: String,
}

/// Which revision's hash an arg takes.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum RevisionValue {
    /// The stable revision.
    #[default]
    Stable,
    /// The revision under analysis.
    Latest,
}

/// What an empty or NaN query result counts as.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum NoDataPolicy {
    /// The measurement is Inconclusive (a person decides once `inconclusiveLimit` is passed).
    #[default]
    Inconclusive,
    /// The measurement is Failed.
    Fail,
    /// The measurement is Successful.
    Pass,
}

/// What happens when a metric's consecutive errors pass `consecutiveErrorLimit`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum ErrorAction {
    /// Pause the rollout until a person resumes or aborts it. Never promotes.
    #[default]
    Pause,
    /// Abort the rollout.
    Abort,
}

/// One measured quantity with its conditions and limits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("[has(self.prometheus), has(self.compare), has(self.web), has(self.job)].filter(x, x).size() == 1").message("exactly one provider must be set: prometheus, compare, web or job"))]
#[x_kube(validation = kube::core::Rule::new("has(self.compare) || has(self.job) || has(self.successCondition) || has(self.failureCondition)").message("a prometheus or web metric needs successCondition or failureCondition"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.job) || (!has(self.successCondition) && !has(self.failureCondition))").message("a job metric is decided by its Job (Complete or Failed) and takes no successCondition or failureCondition"))]
pub struct Metric {
    /// Name of the metric, unique within the analysis.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Time between measurements (default 1m, at least 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Number of measurements to take; absent means until the analysis is no longer needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub count: Option<u32>,
    /// Wait before the first measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay: Option<Duration>,
    /// Failed measurements tolerated; one more fails the metric (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 1000))]
    pub failure_limit: Option<u32>,
    /// Inconclusive measurements tolerated; one more makes the metric Inconclusive (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 1000))]
    pub inconclusive_limit: Option<u32>,
    /// Consecutive errors tolerated; one more makes the metric Error (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 1000))]
    pub consecutive_error_limit: Option<u32>,
    /// What a metric in Error does to the rollout: Pause (default) or Abort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<ErrorAction>,
    /// CEL expression over `result` that marks a measurement Successful, e.g. `result < 0.05`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub success_condition: Option<String>,
    /// CEL expression over `result` that marks a measurement Failed; it wins over success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub failure_condition: Option<String>,
    /// What an empty or NaN result counts as: inconclusive (default), fail or pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data: Option<NoDataPolicy>,
    /// Measured, shown and recorded, but never deciding: its verdict does not count.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Measure with a Prometheus instant query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusMetric>,
    /// Compare canary against stable with a Mann-Whitney U test over range queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<CompareMetric>,
    /// Measure with an HTTP request to a JSON API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebMetric>,
    /// Measure by running a Job (a smoke test): Complete is successful, Failed failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobMetric>,
}

/// Default seconds a job metric's Job may run.
pub const DEFAULT_JOB_TIMEOUT_SECONDS: i64 = 600;
/// Default seconds a job metric's finished Job is kept.
pub const DEFAULT_JOB_TTL_SECONDS: i32 = 3600;

/// A Job run for each measurement; its pod log is shown in the measurement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobMetric {
    /// Labels and annotations of each Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JobMetricMetadata>,
    /// The Job to run.
    pub spec: JobMetricSpec,
}

/// Labels and annotations of a job metric's Jobs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobMetricMetadata {
    /// Labels.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// What a job metric's Job runs, and for how long.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobMetricSpec {
    /// Pod template of the Job; placeholders in its containers' command, args and env
    /// values are filled in (restartPolicy Never or OnFailure; default Never).
    #[schemars(schema_with = "job_pod_template_schema")]
    pub template: k8s_openapi::api::core::v1::PodTemplateSpec,
    /// Retries of a failed pod before the measurement fails (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub backoff_limit: Option<i32>,
    /// Seconds the Job may run before it is stopped and the measurement fails (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub active_deadline_seconds: Option<i64>,
    /// Seconds a finished Job is kept (default 3600); the measurement keeps its result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 604800))]
    pub ttl_seconds_after_finished: Option<i32>,
}

impl JobMetricSpec {
    /// Deadline in seconds, defaulted.
    pub fn active_deadline_seconds(&self) -> i64 {
        self.active_deadline_seconds
            .unwrap_or(DEFAULT_JOB_TIMEOUT_SECONDS)
    }
}

/// A pod template kept as written: a full pod schema in every place an analysis can appear
/// would make the Rollout CRD larger than the API server accepts. The operator checks what
/// it needs (`InvalidSpec`), and the Job's own validation the rest when it is created. (CEL
/// rules cannot see into an object without a schema.)
fn job_pod_template_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "description": "Pod template of the Job (restartPolicy Never or OnFailure).",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Default web metric request timeout.
pub const DEFAULT_WEB_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP request whose JSON answer holds the measured value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.body) || (has(self.method) && self.method == 'POST')").message("body is sent only with method POST"))]
pub struct WebMetric {
    /// URL with placeholders in its path and query (never in its host), e.g.
    /// `https://status.example.com/api/checks?service={{ args.service }}`.
    #[schemars(
        length(min = 1, max = 2048),
        regex(pattern = r"^https?://[^\s/?#]+([/?#].*)?$")
    )]
    pub url: String,
    /// GET (default) or POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<WebMethod>,
    /// Request headers; values may use placeholders, so a header can carry an arg read
    /// from a Secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub headers: Vec<WebHeader>,
    /// Request body of a POST, with placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub body: Option<String>,
    /// JSONPath of the value in the answer, with placeholders, e.g. `$.data.errorRate` or
    /// `{$.checks[0].ok}`.
    #[schemars(length(min = 1, max = 512))]
    pub json_path: String,
    /// Request timeout (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// The HTTP method of a web metric.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum WebMethod {
    /// GET.
    #[default]
    #[serde(rename = "GET")]
    Get,
    /// POST.
    #[serde(rename = "POST")]
    Post,
}

/// One request header.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebHeader {
    /// Header name.
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
    )]
    pub key: String,
    /// Header value, with placeholders.
    #[schemars(length(max = 8192))]
    pub value: String,
}

impl Metric {
    /// Every field with placeholders, by its path within the metric.
    pub fn templated(&self) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        if let Some(p) = &self.prometheus {
            out.push(("prometheus.query".to_string(), p.query.as_str()));
        }
        if let Some(c) = &self.compare {
            out.push(("compare.canaryQuery".to_string(), c.canary_query.as_str()));
            out.push(("compare.stableQuery".to_string(), c.stable_query.as_str()));
        }
        if let Some(w) = &self.web {
            out.push(("web.url".to_string(), w.url.as_str()));
            for (i, h) in w.headers.iter().enumerate() {
                out.push((format!("web.headers[{i}].value"), h.value.as_str()));
            }
            if let Some(b) = &w.body {
                out.push(("web.body".to_string(), b.as_str()));
            }
            out.push(("web.jsonPath".to_string(), w.json_path.as_str()));
        }
        if let Some(j) = &self.job {
            let containers = j.spec.template.spec.iter().flat_map(|s| &s.containers);
            for (i, c) in containers.enumerate() {
                let path = format!("job.spec.template.spec.containers[{i}]");
                for (k, v) in c.command.iter().flatten().enumerate() {
                    out.push((format!("{path}.command[{k}]"), v.as_str()));
                }
                for (k, v) in c.args.iter().flatten().enumerate() {
                    out.push((format!("{path}.args[{k}]"), v.as_str()));
                }
                for (k, e) in c.env.iter().flatten().enumerate() {
                    if let Some(v) = &e.value {
                        out.push((format!("{path}.env[{k}].value"), v.as_str()));
                    }
                }
            }
        }
        out
    }
    /// Interval between measurements, defaulted.
    pub fn interval(&self) -> Duration {
        self.interval.unwrap_or(DEFAULT_INTERVAL)
    }
    /// Failure limit, defaulted.
    pub fn failure_limit(&self) -> u32 {
        self.failure_limit.unwrap_or(0)
    }
    /// Inconclusive limit, defaulted.
    pub fn inconclusive_limit(&self) -> u32 {
        self.inconclusive_limit.unwrap_or(0)
    }
    /// Consecutive error limit, defaulted.
    pub fn consecutive_error_limit(&self) -> u32 {
        self.consecutive_error_limit
            .unwrap_or(DEFAULT_CONSECUTIVE_ERROR_LIMIT)
    }
    /// No-data policy, defaulted.
    pub fn no_data(&self) -> NoDataPolicy {
        self.no_data.unwrap_or_default()
    }
    /// Error action, defaulted.
    pub fn on_error(&self) -> ErrorAction {
        self.on_error.unwrap_or_default()
    }
}

/// Where and how to reach a Prometheus server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!(has(self.address) && has(self.addressFrom))").message("set address or addressFrom, not both"))]
pub struct PrometheusConnection {
    /// Base URL of the Prometheus HTTP API; defaults to the operator's `--prometheus-url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub address: Option<String>,
    /// Read the address from a Secret key instead (keeps internal URLs out of manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_from: Option<SecretKeyRef>,
    /// Request timeout (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Credentials sent with each query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<PrometheusAuth>,
    /// TLS settings for an `https` address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

/// A Prometheus instant query.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusMetric {
    /// PromQL with placeholders `{{ args.NAME }}`, `{{ rollout.name }}`, `{{ rollout.namespace }}`,
    /// `{{ rollout.canaryRevision }}`, `{{ rollout.stableRevision }}`.
    #[schemars(length(min = 1, max = 8192))]
    pub query: String,
    /// Connection settings.
    #[serde(flatten)]
    pub connection: PrometheusConnection,
}

/// Which change of a metric counts as a regression in a comparison.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum CompareDirection {
    /// The canary is worse when its values are higher (error rates, latency).
    #[default]
    Increase,
    /// The canary is worse when its values are lower (throughput, success ratio).
    Decrease,
    /// Any significant difference is a regression.
    Either,
}

/// A statistical comparison of canary against stable (Mann-Whitney U test).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompareMetric {
    /// PromQL for the canary's series (same placeholders as `prometheus.query`).
    #[schemars(length(min = 1, max = 8192))]
    pub canary_query: String,
    /// PromQL for the stable's series.
    #[schemars(length(min = 1, max = 8192))]
    pub stable_query: String,
    /// Range looked back over at each measurement (default 10m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
    /// Resolution of the range query (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Duration>,
    /// Which change counts as a regression: Increase (default), Decrease or Either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<CompareDirection>,
    /// Relative shift of the median tolerated even when significant, in percent (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub tolerance_percent: Option<u32>,
    /// Confidence of the test in percent (default 98, between 50 and 99).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 50, max = 99))]
    pub confidence_percent: Option<u32>,
    /// Fewest points per side for a verdict; fewer is no data (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3, max = 11000))]
    pub min_samples: Option<u32>,
    /// Connection settings.
    #[serde(flatten)]
    pub connection: PrometheusConnection,
}

/// A key of a Secret in the object's own namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Credentials for Prometheus: a bearer token or basic auth, read from Secrets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.bearerToken) != has(self.basicAuth)").message("set exactly one of bearerToken or basicAuth"))]
pub struct PrometheusAuth {
    /// Secret key holding a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<SecretKeyRef>,
    /// Secret holding a username and password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
}

/// Basic-auth credentials held in one Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// Key of the username (default `username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_key: Option<String>,
    /// Key of the password (default `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_key: Option<String>,
}

/// TLS trust for an `https` Prometheus address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!(has(self.caSecret) && has(self.caConfigMap))").message("set caSecret or caConfigMap, not both"))]
pub struct TlsConfig {
    /// Secret key holding a PEM CA bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<SecretKeyRef>,
    /// ConfigMap key holding a PEM CA bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_config_map: Option<SecretKeyRef>,
    /// Server name to verify instead of the address's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// Outcome of one measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum MeasurementOutcome {
    /// The success condition held (or the judge found no regression).
    Successful,
    /// The failure condition held (or the judge found a regression).
    Failed,
    /// Neither condition held, or the result was empty under the `inconclusive` policy.
    Inconclusive,
    /// The query or the expression failed.
    Error,
}

/// Verdict of a metric or of a whole analysis.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum AnalysisVerdict {
    /// Measurements are still being taken.
    #[default]
    Running,
    /// All measurements done within limits.
    Successful,
    /// Inconclusive measurements passed the limit: a person decides.
    Inconclusive,
    /// Consecutive errors passed the limit.
    Error,
    /// Failed measurements passed the limit.
    Failed,
}

/// One measurement as recorded in status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// When the measurement fell due; a measurement is never taken twice for one due time.
    pub due_at: Time,
    /// When it was taken.
    pub taken_at: Time,
    /// Its outcome.
    pub outcome: MeasurementOutcome,
    /// The value, rendered (a number, a list, or the judge's summary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Why it has this outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Progress and recent measurements of one metric.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricStatus {
    /// Metric name.
    pub name: String,
    /// Verdict so far.
    pub verdict: AnalysisVerdict,
    /// Measurements taken in total.
    pub count: u32,
    /// Successful measurements.
    pub successful: u32,
    /// Failed measurements.
    pub failed: u32,
    /// Inconclusive measurements.
    pub inconclusive: u32,
    /// Errored measurements.
    pub error: u32,
    /// Errors in a row, reset by any other outcome.
    pub consecutive_errors: u32,
    /// The metric is a dry run: shown, never deciding.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// The last measurements, newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
}

/// State of one analysis run (a step's, the background one, or a promotion gate's).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunStatus {
    /// Which analysis this is, e.g. `step-2`, `background`, `prePromotion`.
    pub name: String,
    /// Revision being analysed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// When the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// The worst verdict of its metrics.
    pub verdict: AnalysisVerdict,
    /// Human-readable reason for the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Per-metric state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_defaults() {
        let m = Metric::default();
        assert_eq!(m.interval(), Duration::from_secs(60));
        assert_eq!(m.failure_limit(), 0);
        assert_eq!(m.inconclusive_limit(), 0);
        assert_eq!(m.consecutive_error_limit(), 4);
        assert_eq!(
            m.no_data(),
            NoDataPolicy::Inconclusive,
            "missing data never passes by default"
        );
        assert_eq!(
            m.on_error(),
            ErrorAction::Pause,
            "errors never promote and never abort by default"
        );
    }

    #[test]
    fn verdicts_order_from_best_to_worst() {
        use AnalysisVerdict::*;
        assert!(
            Running < Successful
                && Successful < Inconclusive
                && Inconclusive < Error
                && Error < Failed
        );
        assert_eq!(
            [Successful, Failed, Inconclusive].into_iter().max(),
            Some(Failed)
        );
    }

    #[test]
    fn no_data_policy_reads_lowercase() {
        let p: NoDataPolicy = serde_json::from_str("\"fail\"").unwrap();
        assert_eq!(p, NoDataPolicy::Fail);
        assert!(serde_json::from_str::<NoDataPolicy>("\"Fail\"").is_err());
    }
}
