//! Rendering FeatureFlags into one flagd flag-definition document per ConfigMap key, and
//! deciding which flag serves when two claim the same key. Pure.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::api::{DEFAULT_FLAGS_KEY, FeatureFlag, FlagState};

/// `$schema` of flagd flag-definition files.
pub const FLAGD_SCHEMA: &str = "https://flagd.dev/schema/v0/flags.json";

/// Where a flag is rendered: ConfigMap name and key.
pub fn output_of(flag: &FeatureFlag) -> (String, String) {
    let out = &flag.spec.output.config_map;
    (
        out.name.clone(),
        out.key
            .clone()
            .unwrap_or_else(|| DEFAULT_FLAGS_KEY.to_string()),
    )
}

/// The percentage of users a flag currently gives its rollout variant (from its status).
pub fn percentage(flag: &FeatureFlag) -> Option<i32> {
    flag.spec.rollout.as_ref()?;
    Some(
        flag.status
            .as_ref()
            .and_then(|s| s.percentage)
            .unwrap_or(0)
            .clamp(0, 100),
    )
}

/// The flagd definition of one flag at its current percentage.
pub fn definition(flag: &FeatureFlag) -> Value {
    let spec = &flag.spec;
    let mut default = spec.default_variant.clone();
    let mut targeting = spec.targeting.clone();
    if let (Some(rollout), Some(p)) = (&spec.rollout, percentage(flag)) {
        targeting = match p {
            0 => None,
            // Everyone: the variant is simply what is served.
            100 => {
                default = rollout.variant.clone();
                None
            }
            // flagd's fractional buckets users by a hash of the flag key and targeting key;
            // the rolled-out variant comes first, so a user in it stays in it as the
            // percentage grows.
            p => Some(json!({"fractional": [
                [rollout.variant, p],
                [spec.default_variant, 100 - p],
            ]})),
        };
    }
    let mut out = json!({
        "state": match spec.state {
            FlagState::Enabled => "ENABLED",
            FlagState::Disabled => "DISABLED",
        },
        "variants": spec.variants,
        "defaultVariant": default,
    });
    if let Some(t) = targeting {
        out["targeting"] = t;
    }
    if let Some(m) = &spec.metadata {
        out["metadata"] = json!(m);
    }
    out
}

/// The flags of one ConfigMap key: which flag serves each flag key (the oldest), and which
/// are in conflict with it.
#[derive(Debug, Default, PartialEq)]
pub struct Claims {
    /// Flag key → name of the FeatureFlag serving it.
    pub serving: BTreeMap<String, String>,
    /// FeatureFlag name → name of the one it conflicts with.
    pub conflicts: BTreeMap<String, String>,
}

fn order(flag: &FeatureFlag) -> (Option<jiff::Timestamp>, String) {
    (
        flag.metadata.creation_timestamp.as_ref().map(|t| t.0),
        flag.metadata.name.clone().unwrap_or_default(),
    )
}

/// Decides, among the flags of one ConfigMap key, which serves each flag key: the earliest
/// created keeps serving; a later one with the same key is in conflict.
pub fn claims(flags: &[&FeatureFlag]) -> Claims {
    let mut sorted: Vec<&&FeatureFlag> = flags
        .iter()
        .filter(|f| f.metadata.deletion_timestamp.is_none())
        .collect();
    sorted.sort_by_key(|f| order(f));
    let mut out = Claims::default();
    for f in sorted {
        let name = f.metadata.name.clone().unwrap_or_default();
        let key = f.spec.flag_key(&name).to_string();
        match out.serving.get(&key) {
            Some(holder) => {
                out.conflicts.insert(name, holder.clone());
            }
            None => {
                out.serving.insert(key, name);
            }
        }
    }
    out
}

/// The flagd document of one ConfigMap key, from all flags that name it (conflicting ones
/// left out), as stable pretty JSON.
pub fn document(flags: &[&FeatureFlag]) -> String {
    let claims = claims(flags);
    let mut defs = serde_json::Map::new();
    for (key, name) in &claims.serving {
        if let Some(f) = flags
            .iter()
            .find(|f| f.metadata.name.as_deref() == Some(name.as_str()))
        {
            defs.insert(key.clone(), definition(f));
        }
    }
    let doc = json!({"$schema": FLAGD_SCHEMA, "flags": defs});
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn flag(name: &str, created: &str, extra: Value) -> FeatureFlag {
        let mut spec = json!({"state": "ENABLED", "variants": {"on": true, "off": false},
            "defaultVariant": "off", "output": {"configMap": {"name": "flags"}}});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        serde_json::from_value(
            json!({"apiVersion": "cutover.dev/v1alpha1", "kind": "FeatureFlag",
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
            "spec": spec}),
        )
        .unwrap()
    }

    #[test]
    fn a_plain_flag_renders_as_flagd_expects() {
        let f = flag(
            "dark-mode",
            "2027-01-01T00:00:00Z",
            json!({"metadata": {"owner": "web"}, "targeting": {"if": [true, "on", "off"]}}),
        );
        let d = definition(&f);
        assert_eq!(
            d,
            json!({"state": "ENABLED", "variants": {"on": true, "off": false},
                "defaultVariant": "off", "targeting": {"if": [true, "on", "off"]},
                "metadata": {"owner": "web"}})
        );
    }

    #[test]
    fn a_rollout_renders_a_fractional_split_with_the_variant_first() {
        let mut f = flag(
            "new-checkout",
            "2027-01-01T00:00:00Z",
            json!({"rollout": {"variant": "on", "steps": [5, 50, 100]}}),
        );
        assert_eq!(
            definition(&f).get("targeting"),
            None,
            "0 % before it starts"
        );
        f.status = Some(crate::api::FeatureFlagStatus {
            percentage: Some(20),
            ..Default::default()
        });
        assert_eq!(
            definition(&f)["targeting"],
            json!({"fractional": [["on", 20], ["off", 80]]})
        );
        f.status.as_mut().unwrap().percentage = Some(100);
        let d = definition(&f);
        assert_eq!(d["defaultVariant"], "on");
        assert_eq!(d.get("targeting"), None);
    }

    #[test]
    fn the_earliest_flag_keeps_a_key_and_the_later_conflicts() {
        let a = flag("a", "2027-01-01T00:00:00Z", json!({"key": "checkout"}));
        let b = flag(
            "b",
            "2027-01-02T00:00:00Z",
            json!({"key": "checkout", "defaultVariant": "on"}),
        );
        let c = flag("c", "2027-01-03T00:00:00Z", json!({}));
        let claims = claims(&[&b, &a, &c]);
        assert_eq!(claims.serving["checkout"], "a");
        assert_eq!(claims.serving["c"], "c");
        assert_eq!(claims.conflicts["b"], "a");
        let doc: Value = serde_json::from_str(&document(&[&b, &a, &c])).unwrap();
        assert_eq!(doc["$schema"], FLAGD_SCHEMA);
        assert_eq!(doc["flags"].as_object().unwrap().len(), 2);
        // The key serves the earliest flag's definition; the later one is not rendered.
        assert_eq!(doc["flags"]["checkout"], definition(&a));
        assert_ne!(doc["flags"]["checkout"], definition(&b));
        // The same flags in another order render the same bytes: no needless write.
        assert_eq!(document(&[&a, &b, &c]), document(&[&c, &b, &a]));
    }
}
