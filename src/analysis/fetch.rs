//! Taking a measurement: render the metric's queries, resolve its Prometheus endpoint
//! (address, credentials and CA from Secrets or ConfigMaps), and fetch the result. The only
//! I/O of analysis; what the result means is decided by the pure code.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;

use super::{
    condition::QueryResult,
    job::{self, JobResult},
    prometheus::{self, Credentials, Endpoint, Transport},
    template::{self, TemplateContext},
    web::WebRequest,
};
use crate::api::{
    AnalysisArg, DEFAULT_QUERY_TIMEOUT, DEFAULT_WEB_TIMEOUT, Metric, PrometheusConnection,
    RevisionValue, SecretKeyRef,
};

/// Default comparison window.
pub const DEFAULT_WINDOW: SignedDuration = SignedDuration::from_mins(10);
/// Default comparison resolution.
pub const DEFAULT_STEP: std::time::Duration = std::time::Duration::from_secs(30);

/// What was fetched for one measurement.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// An instant query's result, or why it failed.
    Query(Result<QueryResult, String>),
    /// The canary and stable series of a comparison, or why they could not be fetched.
    Compare(Result<(Vec<f64>, Vec<f64>), String>),
    /// How a job metric's Job stands, or why it could not be run.
    Job(Result<JobResult, String>),
}

/// Where measurements are fetched from.
pub struct Fetcher<'a> {
    /// Client for Secrets and ConfigMaps.
    pub client: &'a kube::Client,
    /// Transport to Prometheus.
    pub transport: &'a dyn Transport,
    /// The operator's `--prometheus-url`.
    pub default_url: Option<&'a str>,
    /// Namespace of the object whose analysis this is (Secrets are read there only).
    pub namespace: &'a str,
    /// The hosts requests may go to.
    pub egress: &'a crate::controller::egress::Allowlist,
    /// Client of web metrics.
    pub web: &'a super::web::WebClient,
}

/// `input` with every Secret value cut out of its error: a server's error may quote the
/// query or URL it was sent, which carried them, and errors are written to status.
fn redact(input: Input, secrets: &[String]) -> Input {
    let clean = |mut e: String| {
        for s in secrets.iter().filter(|s| !s.is_empty()) {
            e = e.replace(s.as_str(), "<secret>");
        }
        e
    };
    match input {
        Input::Query(Err(e)) => Input::Query(Err(clean(e))),
        Input::Compare(Err(e)) => Input::Compare(Err(clean(e))),
        Input::Job(Err(e)) => Input::Job(Err(clean(e))),
        other => other,
    }
}

/// The placeholders' values.
fn placeholders(args: BTreeMap<String, String>, subject: &Subject) -> TemplateContext {
    TemplateContext {
        args,
        name: subject.name.clone(),
        namespace: subject.namespace.clone(),
        canary_revision: subject.canary_revision.clone(),
        stable_revision: subject.stable_revision.clone(),
        service: subject.service.clone(),
    }
}

/// Values of the `rollout.*` placeholders.
#[derive(Clone, Debug, Default)]
pub struct Subject {
    /// Object name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Revision under analysis.
    pub canary_revision: String,
    /// Stable revision.
    pub stable_revision: String,
    /// The Service the revision under analysis is reached through, when the run has one.
    pub service: Option<String>,
}

impl Fetcher<'_> {
    /// Takes one measurement of `metric` at `now`.
    pub async fn fetch(
        &self,
        metric: &Metric,
        args: &[AnalysisArg],
        subject: &Subject,
        now: Timestamp,
    ) -> Input {
        let secret_args: Vec<&str> = args
            .iter()
            .filter(|a| a.value.is_none())
            .filter(|a| {
                a.value_from
                    .as_ref()
                    .is_some_and(|f| f.secret_key_ref.is_some())
            })
            .map(|a| a.name.as_str())
            .collect();
        let args = match self.arg_values(args, subject).await {
            Ok(args) => args,
            Err(e) if metric.compare.is_some() => return Input::Compare(Err(e)),
            Err(e) => return Input::Query(Err(e)),
        };
        let secrets: Vec<String> = secret_args
            .iter()
            .filter_map(|n| args.get(*n).cloned())
            .collect();
        let input = self.fetch_with(metric, args, subject, now).await;
        redact(input, &secrets)
    }

    /// Takes (or goes on with) the measurement `m` of a job metric: its Job is created once
    /// and read until it finishes.
    pub async fn fetch_job(
        &self,
        metric: &Metric,
        args: &[AnalysisArg],
        subject: &Subject,
        m: &job::Measurement<'_>,
    ) -> Input {
        let Some(spec) = &metric.job else {
            return Input::Job(Err("the metric has no job".into()));
        };
        // A Secret's value never goes into a Job's spec, where anyone reading Jobs sees it:
        // the pod reads the Secret itself (env valueFrom.secretKeyRef).
        let from_secret: Vec<&str> = args
            .iter()
            .filter(|a| {
                a.value.is_none()
                    && a.value_from
                        .as_ref()
                        .is_some_and(|f| f.secret_key_ref.is_some())
            })
            .map(|a| a.name.as_str())
            .collect();
        let plain: Vec<AnalysisArg> = args
            .iter()
            .filter(|a| !from_secret.contains(&a.name.as_str()))
            .cloned()
            .collect();
        let values = match self.arg_values(&plain, subject).await {
            Ok(values) => values,
            Err(e) => return Input::Job(Err(e)),
        };
        let placeholders = placeholders(values, subject);
        let result = job::measure(self.client, m, spec, &placeholders)
            .await
            .map_err(|e| match from_secret.iter().find(|n| e.contains(&format!("args.{n} "))) {
                Some(n) => format!(
                    "arg {n:?} comes from a Secret, and a job metric never writes a Secret's value into its Job: read the Secret in the pod with env valueFrom.secretKeyRef"
                ),
                None => e,
            });
        Input::Job(result)
    }

    async fn fetch_with(
        &self,
        metric: &Metric,
        args: BTreeMap<String, String>,
        subject: &Subject,
        now: Timestamp,
    ) -> Input {
        let placeholders = placeholders(args, subject);
        if let Some(p) = &metric.prometheus {
            let result = async {
                let query = template::render(&p.query, &placeholders).map_err(|e| e.to_string())?;
                let endpoint = self.endpoint(&p.connection).await?;
                prometheus::instant(self.transport, &endpoint, &query, now)
                    .await
                    .map_err(|e| e.to_string())
            }
            .await;
            return Input::Query(result);
        }
        if let Some(c) = &metric.compare {
            let result = async {
                let canary =
                    template::render(&c.canary_query, &placeholders).map_err(|e| e.to_string())?;
                let stable =
                    template::render(&c.stable_query, &placeholders).map_err(|e| e.to_string())?;
                let endpoint = self.endpoint(&c.connection).await?;
                let window = c
                    .window
                    .and_then(|w| SignedDuration::try_from(w.as_std()).ok())
                    .unwrap_or(DEFAULT_WINDOW);
                let step = c.step.map_or(DEFAULT_STEP, |s| s.as_std());
                let start = now - window;
                let (a, b) = futures::join!(
                    prometheus::range(self.transport, &endpoint, &canary, start, now, step),
                    prometheus::range(self.transport, &endpoint, &stable, start, now, step),
                );
                Ok((
                    a.map_err(|e| format!("canary: {e}"))?,
                    b.map_err(|e| format!("stable: {e}"))?,
                ))
            }
            .await;
            return Input::Compare(result);
        }
        if let Some(w) = &metric.web {
            let result = async {
                let render =
                    |t: &str| template::render(t, &placeholders).map_err(|e| e.to_string());
                let url = render(&w.url)?;
                // The host is checked when the spec is; checked again as rendered, so no
                // placeholder can lead a request elsewhere.
                self.egress
                    .check(&format!("web metric {:?}", metric.name), &url)
                    .map_err(|e| e.to_string())?;
                let headers = w
                    .headers
                    .iter()
                    .map(|h| Ok((h.key.clone(), render(&h.value)?)))
                    .collect::<Result<Vec<_>, String>>()?;
                let body = w.body.as_deref().map(render).transpose()?;
                let request = WebRequest {
                    method: w.method.unwrap_or_default(),
                    url,
                    headers,
                    body,
                    json_path: render(&w.json_path)?,
                    timeout: w.timeout.unwrap_or(DEFAULT_WEB_TIMEOUT).as_std(),
                };
                self.web.measure(&request).await
            }
            .await;
            return Input::Query(result);
        }
        Input::Query(Err("the metric has no provider".into()))
    }

    /// The args' values: literals, Secret keys read now (never kept), and revisions.
    async fn arg_values(
        &self,
        args: &[AnalysisArg],
        subject: &Subject,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut values = BTreeMap::new();
        for arg in args {
            let value = match (&arg.value, &arg.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(from)) => match (&from.secret_key_ref, from.pod_template_hash_value) {
                    (Some(r), _) => self
                        .secret_key(r)
                        .await
                        .map_err(|e| format!("arg {:?}: {e}", arg.name))?,
                    (None, Some(RevisionValue::Stable)) => subject.stable_revision.clone(),
                    (None, Some(RevisionValue::Latest)) => subject.canary_revision.clone(),
                    // A fieldRef is read from the object when templates are resolved.
                    (None, None) => {
                        return Err(format!("arg {:?} has no value", arg.name));
                    }
                },
                (None, None) => return Err(format!("arg {:?} has no value", arg.name)),
            };
            values.insert(arg.name.clone(), value);
        }
        Ok(values)
    }

    /// Resolves address, credentials and trust of a connection.
    pub async fn endpoint(&self, c: &PrometheusConnection) -> Result<Endpoint, String> {
        let base = match (&c.address, &c.address_from) {
            (Some(a), _) => a.clone(),
            (None, Some(r)) => {
                let address = self.secret_key(r).await?.trim().to_string();
                // An address kept in a Secret is not repeated into status, host included.
                if self.egress.check("", &address).is_err() {
                    return Err(format!(
                        "the Prometheus address in Secret {:?} key {:?} is not an http(s) URL whose host the operator may send requests to; add its host to {}",
                        r.name,
                        r.key,
                        crate::controller::egress::SETTING
                    ));
                }
                address
            }
            (None, None) => self.default_url.map(str::to_string).ok_or_else(|| {
                "no Prometheus address: set address on the metric or --prometheus-url on the operator"
                    .to_string()
            })?,
        };
        // Checked before any Secret with credentials is read for it.
        self.egress
            .check("the Prometheus address", &base)
            .map_err(|e| e.to_string())?;
        let mut endpoint = Endpoint::new(base);
        endpoint.timeout = c.timeout.unwrap_or(DEFAULT_QUERY_TIMEOUT).as_std();
        if let Some(auth) = &c.auth {
            endpoint.credentials = match (&auth.bearer_token, &auth.basic_auth) {
                (Some(token), _) => Some(Credentials::Bearer(self.secret_key(token).await?)),
                (None, Some(basic)) => {
                    let user = SecretKeyRef {
                        name: basic.secret_name.clone(),
                        key: basic
                            .username_key
                            .clone()
                            .unwrap_or_else(|| "username".into()),
                    };
                    let password = SecretKeyRef {
                        name: basic.secret_name.clone(),
                        key: basic
                            .password_key
                            .clone()
                            .unwrap_or_else(|| "password".into()),
                    };
                    Some(Credentials::Basic {
                        username: self.secret_key(&user).await?,
                        password: self.secret_key(&password).await?,
                    })
                }
                (None, None) => None,
            };
        }
        if let Some(tls) = &c.tls {
            endpoint.server_name = tls.server_name.clone();
            endpoint.ca_pem = match (&tls.ca_secret, &tls.ca_config_map) {
                (Some(s), _) => Some(self.secret_key(s).await?.into_bytes()),
                (None, Some(m)) => Some(self.config_map_key(m).await?.into_bytes()),
                (None, None) => None,
            };
        }
        Ok(endpoint)
    }

    /// A Secret key's value. Errors name the Secret and key, never the value.
    async fn secret_key(&self, r: &SecretKeyRef) -> Result<String, String> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), self.namespace);
        let secret = secrets
            .get_opt(&r.name)
            .await
            .map_err(|e| match e {
                kube::Error::Api(status) if status.code == 403 => format!(
                    "the operator may not read Secret {:?} in namespace {:?}: grant it `get` on secrets there (chart value rbac.readSecrets)",
                    r.name, self.namespace
                ),
                kube::Error::Api(status) => {
                    format!("reading Secret {:?}: {}", r.name, status.message)
                }
                e => format!("reading Secret {:?}: {e}", r.name),
            })?
            .ok_or_else(|| {
                format!(
                    "Secret {:?} not found in namespace {:?}",
                    r.name, self.namespace
                )
            })?;
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .map(|b| b.0.clone())
            .ok_or_else(|| format!("Secret {:?} has no key {:?}", r.name, r.key))?;
        String::from_utf8(bytes)
            .map_err(|_| format!("Secret {:?} key {:?} is not UTF-8", r.name, r.key))
    }

    async fn config_map_key(&self, r: &SecretKeyRef) -> Result<String, String> {
        let maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), self.namespace);
        let map = maps
            .get_opt(&r.name)
            .await
            .map_err(|e| format!("reading ConfigMap {:?}: {e}", r.name))?
            .ok_or_else(|| {
                format!(
                    "ConfigMap {:?} not found in namespace {:?}",
                    r.name, self.namespace
                )
            })?;
        map.data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .cloned()
            .ok_or_else(|| format!("ConfigMap {:?} has no key {:?}", r.name, r.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_cut_out_of_errors_and_only_of_errors() {
        let secrets = vec!["t0k3n".to_string(), String::new()];
        let quoted = Input::Query(Err(
            "bad_data: parse error: unexpected \"t0k3n\" in errors{key=\"t0k3n\"}".into(),
        ));
        assert_eq!(
            redact(quoted, &secrets),
            Input::Query(Err(
                "bad_data: parse error: unexpected \"<secret>\" in errors{key=\"<secret>\"}".into()
            ))
        );
        assert_eq!(
            redact(Input::Compare(Err("canary: t0k3n".into())), &secrets),
            Input::Compare(Err("canary: <secret>".into()))
        );
        let ok = Input::Query(Ok(QueryResult::Text("t0k3n".into())));
        assert_eq!(
            redact(ok.clone(), &secrets),
            ok,
            "a value is the metric's, kept"
        );
    }
}
