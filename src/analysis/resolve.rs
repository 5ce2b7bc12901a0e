//! Template references resolved into one analysis: the templates' metrics merged with the
//! inline ones, their args checked and given values. Pure: the shell reads the templates.
//!
//! Resolution happens at each reconcile, so a template edited while a run is under way
//! applies from the next measurement, and a template deleted makes the object InvalidSpec
//! (nothing measured, nothing promoted) until it is back.

use std::collections::BTreeMap;

use serde_json::Value;

use super::template;
use crate::api::{
    AnalysisArg, AnalysisSpec, AnalysisTemplateSpec, TemplateRef,
    openapi::{FieldError, FieldErrorKind},
    validate,
};

/// Most metrics one analysis measures once its templates are merged in: each is a request
/// per interval, and ten templates of twenty would be two hundred.
pub const MAX_METRICS: usize = 50;

/// The templates an object's analyses may reference.
#[derive(Clone, Debug, Default)]
pub struct Templates {
    /// Namespace of the object (its AnalysisTemplates are read there).
    pub namespace: String,
    /// AnalysisTemplates of that namespace by name.
    pub namespaced: BTreeMap<String, AnalysisTemplateSpec>,
    /// ClusterAnalysisTemplates by name.
    pub cluster: BTreeMap<String, AnalysisTemplateSpec>,
}

impl Templates {
    /// The template a reference names, if it exists.
    pub fn get(&self, r: &TemplateRef) -> Option<&AnalysisTemplateSpec> {
        if r.cluster_scope {
            self.cluster.get(&r.template_name)
        } else {
            self.namespaced.get(&r.template_name)
        }
    }
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError::new(path, FieldErrorKind::Invalid, message)
}

/// Problems in a template's own spec, with paths that name it.
pub fn check_template(name: &str, spec: &AnalysisTemplateSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let as_analysis = AnalysisSpec {
        templates: Vec::new(),
        metrics: spec.metrics.clone(),
        args: spec.args.clone(),
    };
    validate::analysis(&as_analysis, &format!("{name}: spec"), &mut errors);
    for (i, arg) in spec.args.iter().enumerate() {
        if arg
            .value_from
            .as_ref()
            .is_some_and(|f| f.field_ref.is_some())
        {
            errors.push(invalid(
                format!("{name}: spec.args[{i}].valueFrom.fieldRef"),
                "a template cannot read fields of the objects that use it; give the arg from the analysis",
            ));
        }
    }
    errors
}

/// The analysis at `path` with its template references resolved: the templates' metrics,
/// then the inline ones; the templates' args with the analysis's own values over them;
/// `fieldRef` args read from `object` (the whole object, as JSON).
pub fn resolve(
    spec: &AnalysisSpec,
    path: &str,
    templates: &Templates,
    object: &Value,
) -> Result<AnalysisSpec, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut metrics = Vec::new();
    // Where each metric came from, to name both sides of a clash.
    let mut origins: BTreeMap<String, String> = BTreeMap::new();
    // Args the templates declare, with the template that declared each first.
    let mut declared: Vec<(AnalysisArg, String, usize)> = Vec::new();
    for (i, r) in spec.templates.iter().enumerate() {
        let what = r.describe();
        let Some(t) = templates.get(r) else {
            let place = if r.cluster_scope {
                String::new()
            } else {
                format!(" in namespace {:?}", templates.namespace)
            };
            errors.push(invalid(
                format!("{path}.templates[{i}]"),
                format!("{what} does not exist{place}"),
            ));
            continue;
        };
        errors.extend(check_template(&what, t));
        for m in &t.metrics {
            if let Some(first) = origins.insert(m.name.clone(), what.clone()) {
                errors.push(invalid(
                    format!("{path}.templates[{i}]"),
                    format!("metric {:?} is defined by both {first} and {what}", m.name),
                ));
            }
            metrics.push(m.clone());
        }
        for a in &t.args {
            match declared.iter_mut().find(|(d, _, _)| d.name == a.name) {
                None => declared.push((a.clone(), what.clone(), i)),
                Some((d, by, _)) => {
                    if d.is_given()
                        && a.is_given()
                        && (d.value != a.value || d.value_from != a.value_from)
                    {
                        errors.push(invalid(
                            format!("{path}.templates[{i}]"),
                            format!("arg {:?} has different values in {by} and {what}", a.name),
                        ));
                    } else if !d.is_given() && a.is_given() {
                        *d = a.clone();
                    }
                }
            }
        }
    }
    for (i, m) in spec.metrics.iter().enumerate() {
        if let Some(first) = origins.get(&m.name) {
            errors.push(invalid(
                format!("{path}.metrics[{i}]"),
                format!("metric {:?} is also defined by {first}", m.name),
            ));
        }
        metrics.push(m.clone());
    }
    // Each metric is a request per interval: templates must not multiply them past what an
    // analysis may write inline.
    if metrics.len() > MAX_METRICS {
        errors.push(invalid(
            path,
            format!(
                "an analysis measures at most {MAX_METRICS} metrics; its templates and inline metrics add up to {}",
                metrics.len()
            ),
        ));
    }
    let mut args: Vec<AnalysisArg> = declared.iter().map(|(a, _, _)| a.clone()).collect();
    for a in &spec.args {
        match args.iter_mut().find(|d| d.name == a.name) {
            Some(d) => *d = a.clone(),
            None => args.push(a.clone()),
        }
    }
    for (a, by, i) in &declared {
        if !args.iter().any(|f| f.name == a.name && f.is_given()) {
            errors.push(invalid(
                format!("{path}.templates[{i}]"),
                format!("arg {:?} required by {by} is not given", a.name),
            ));
        }
    }
    for (i, a) in spec.args.iter().enumerate() {
        if !a.is_given() {
            errors.push(invalid(
                format!("{path}.args[{i}]"),
                "an analysis arg needs value or valueFrom",
            ));
        }
    }
    for a in &mut args {
        let Some(field) = a.value_from.as_ref().and_then(|f| f.field_ref.as_ref()) else {
            continue;
        };
        match field_value(object, &field.field_path) {
            Ok(v) => {
                a.value = Some(v);
                a.value_from = None;
            }
            Err(e) => errors.push(invalid(
                // Only the analysis's own args read fields: a template's may not.
                match spec.args.iter().position(|s| s.name == a.name) {
                    Some(j) => format!("{path}.args[{j}].valueFrom.fieldRef"),
                    None => format!("{path}.args"),
                },
                format!("arg {:?}: fieldRef {:?} {e}", a.name, field.field_path),
            )),
        }
    }
    // Inline metrics may use args only a template declares, so their placeholders are
    // checked here, against the merged args (without templates, `validate` did).
    let names: Vec<&str> = args.iter().map(|a| a.name.as_str()).collect();
    let inline = if spec.templates.is_empty() {
        &[][..]
    } else {
        &spec.metrics[..]
    };
    for (i, m) in inline.iter().enumerate() {
        for (field, query) in m.templated() {
            if let Err(e) = template::check(query, names.iter().copied()) {
                errors.push(invalid(
                    format!("{path}.metrics[{i}].{field}"),
                    e.to_string(),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(AnalysisSpec {
            templates: Vec::new(),
            metrics,
            args,
        })
    } else {
        Err(errors)
    }
}

/// Deepest field path followed; longer ones are refused (untrusted input).
const MAX_SEGMENTS: usize = 32;

/// The JSON value at a field path such as `metadata.labels['app']` or `spec.ports[0].port`.
pub fn value_at<'a>(object: &'a Value, path: &str) -> Result<&'a Value, String> {
    let segments = segments(path)?;
    let mut at = object;
    for s in &segments {
        at = match (s, at) {
            (Segment::Key(k), Value::Object(map)) => map.get(k.as_str()),
            (Segment::Index(i), Value::Array(list)) => list.get(*i),
            _ => None,
        }
        .ok_or_else(|| "names no field of the object".to_string())?;
    }
    Ok(at)
}

/// The value at a JSONPath of the simple kind: `$.data.rate`, `{$.checks[0].ok}`,
/// `$['key']`; `$` alone is the whole document. Filters and wildcards are refused.
pub fn json_path<'a>(document: &'a Value, path: &str) -> Result<&'a Value, String> {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|q| q.strip_suffix('}'))
        .unwrap_or(p)
        .trim();
    let Some(rest) = p.strip_prefix('$') else {
        return Err(format!("JSONPath {path:?} must start with $"));
    };
    if rest.contains('*') || rest.contains('?') || rest.contains("..") {
        return Err(format!(
            "JSONPath {path:?}: wildcards, filters and recursive descent are not supported; name one value"
        ));
    }
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    if rest.is_empty() {
        return Ok(document);
    }
    value_at(document, rest).map_err(|e| format!("JSONPath {path:?} {e}"))
}

/// The value at a field path such as `metadata.labels['app']` or `spec.ports[0].port`.
pub fn field_value(object: &Value, path: &str) -> Result<String, String> {
    match value_at(object, path)? {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err("names no field of the object".into()),
        _ => Err("names an object or a list, not a value".into()),
    }
}

#[derive(Debug, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

fn segments(path: &str) -> Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    let mut rest = path.trim();
    let bad = || "is not a field path like metadata.labels['app']".to_string();
    while !rest.is_empty() {
        if out.len() >= MAX_SEGMENTS {
            return Err(format!("is longer than {MAX_SEGMENTS} fields"));
        }
        if let Some(after) = rest.strip_prefix('[') {
            let close = after.find(']').ok_or_else(bad)?;
            let inner = &after[..close];
            let quoted = inner
                .strip_prefix('\'')
                .and_then(|i| i.strip_suffix('\''))
                .or_else(|| inner.strip_prefix('"').and_then(|i| i.strip_suffix('"')));
            out.push(match quoted {
                Some(key) => Segment::Key(key.to_string()),
                None => Segment::Index(inner.parse().map_err(|_| bad())?),
            });
            rest = &after[close + 1..];
            rest = rest.strip_prefix('.').unwrap_or(rest);
            continue;
        }
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        if end == 0 {
            return Err(bad());
        }
        out.push(Segment::Key(rest[..end].to_string()));
        rest = &rest[end..];
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
