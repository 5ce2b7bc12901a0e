//! Label selectors as Kubernetes reads them: `matchLabels` and `matchExpressions` together,
//! the string form of the scale subresource's `status.selector`, and matching labels.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// The selector in the string form `kubectl get -l` and the scale subresource use:
/// `app=web,tier in (a,b),track notin (x),canary,!legacy`.
pub fn to_string(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        let mut values = e.values.clone().unwrap_or_default();
        values.sort();
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, values.join(",")),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => format!("{} {other} ({})", e.key, values.join(",")),
        });
    }
    parts.join(",")
}

/// Whether `labels` satisfy `selector`; an error names a requirement Kubernetes would refuse.
pub fn matches(
    selector: &LabelSelector,
    labels: &BTreeMap<String, String>,
) -> Result<bool, String> {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let mut by_expressions = true;
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default();
        let value = labels.get(&e.key);
        let ok = match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(format!(
                    "{} {}: values must not be empty",
                    e.key, e.operator
                ));
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(format!("{} {}: values must be empty", e.key, e.operator));
            }
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => {
                return Err(format!(
                    "{}: operator {other:?} is not In, NotIn, Exists or DoesNotExist",
                    e.key
                ));
            }
        };
        by_expressions &= ok;
    }
    Ok(by_labels && by_expressions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn selector(v: serde_json::Value) -> LabelSelector {
        serde_json::from_value(v).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_string_form_holds_labels_and_expressions() {
        let s = selector(json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["b", "a"]},
            {"key": "track", "operator": "NotIn", "values": ["x"]},
            {"key": "canary", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"}]}));
        assert_eq!(
            to_string(&s),
            "app=web,tier in (a,b),track notin (x),canary,!legacy"
        );
        assert_eq!(
            to_string(&selector(json!({"matchLabels": {"a": "1", "b": "2"}}))),
            "a=1,b=2"
        );
        assert_eq!(to_string(&LabelSelector::default()), "");
    }

    #[test]
    fn labels_match_every_requirement() {
        let s = selector(json!({"matchLabels": {"app": "web"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "legacy", "operator": "DoesNotExist"}]}));
        assert_eq!(
            matches(&s, &labels(&[("app", "web"), ("tier", "a")])),
            Ok(true)
        );
        assert_eq!(
            matches(&s, &labels(&[("app", "web"), ("tier", "c")])),
            Ok(false)
        );
        assert_eq!(matches(&s, &labels(&[("app", "web")])), Ok(false));
        assert_eq!(
            matches(
                &s,
                &labels(&[("app", "web"), ("tier", "b"), ("legacy", "")])
            ),
            Ok(false)
        );
        assert_eq!(
            matches(&s, &labels(&[("app", "api"), ("tier", "a")])),
            Ok(false)
        );
        let not_in = selector(
            json!({"matchExpressions": [{"key": "track", "operator": "NotIn", "values": ["x"]},
            {"key": "app", "operator": "Exists"}]}),
        );
        assert_eq!(matches(&not_in, &labels(&[("app", "web")])), Ok(true));
        assert_eq!(
            matches(&not_in, &labels(&[("app", "web"), ("track", "x")])),
            Ok(false)
        );
        assert_eq!(matches(&not_in, &labels(&[("track", "y")])), Ok(false));
    }

    #[test]
    fn requirements_kubernetes_refuses_are_errors() {
        for bad in [
            json!({"key": "a", "operator": "In", "values": []}),
            json!({"key": "a", "operator": "Exists", "values": ["x"]}),
            json!({"key": "a", "operator": "Gt", "values": ["1"]}),
        ] {
            let s = selector(json!({"matchExpressions": [bad]}));
            assert!(matches(&s, &labels(&[("a", "x")])).is_err(), "{s:?}");
        }
    }
}
