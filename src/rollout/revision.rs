//! Revisions: the hash of a pod template, and the Deployment that runs it.

use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::record::Role;

/// Length of a revision hash.
pub const HASH_LEN: usize = 10;

/// A stable hash of a pod template: the same template always yields the same revision.
pub fn template_hash(template: &PodTemplateSpec) -> String {
    // serde_json writes struct fields in declaration order and maps sorted (BTreeMap), so
    // the text is canonical for a given template.
    hash_text(&serde_json::to_string(template).unwrap_or_default())
}

/// A short stable hash of a text (FNV-1a, in an alphabet that cannot spell words).
pub fn hash_text(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..HASH_LEN)
        .map(|_| {
            let c = ALPHABET[(hash % ALPHABET.len() as u64) as usize] as char;
            hash /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// Name of the Deployment running `revision` of `rollout`.
pub fn deployment_name(rollout: &str, revision: &str) -> String {
    format!("{rollout}-{revision}")
}

/// The `cutover.dev/promoted-at` stamp (Unix seconds) a revision's Deployment carries after
/// a write with `role`: now as it takes the serving role (stable, or active for blue-green),
/// the one it had otherwise. A revision that was only ever a canary or a preview is never
/// stamped.
pub fn promotion_stamp(
    was: Option<&str>,
    stamped: Option<&str>,
    role: Role,
    now: jiff::Timestamp,
) -> Option<String> {
    let serving = |r: &str| r == Role::Stable.as_str() || r == Role::Active.as_str();
    if serving(role.as_str()) && (stamped.is_none() || !was.is_some_and(serving)) {
        Some(now.as_second().to_string())
    } else {
        stamped.map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_revision_is_stamped_as_it_starts_serving_and_keeps_the_stamp() {
        let t = |s: i64| jiff::Timestamp::from_second(s).unwrap();
        let stamp = |s: i64| Some(s.to_string());
        assert_eq!(
            promotion_stamp(None, None, Role::Stable, t(1)),
            stamp(1),
            "first revision"
        );
        assert_eq!(promotion_stamp(None, None, Role::Canary, t(1)), None);
        assert_eq!(
            promotion_stamp(Some("canary"), None, Role::History, t(2)),
            None,
            "aborted: never served"
        );
        assert_eq!(
            promotion_stamp(Some("canary"), None, Role::Stable, t(3)),
            stamp(3),
            "promoted"
        );
        assert_eq!(
            promotion_stamp(Some("preview"), None, Role::Active, t(3)),
            stamp(3),
            "blue-green switch"
        );
        let kept = 3.to_string();
        assert_eq!(
            promotion_stamp(Some("stable"), Some(&kept), Role::Stable, t(9)),
            stamp(3),
            "a rescale keeps it"
        );
        assert_eq!(
            promotion_stamp(Some("stable"), Some(&kept), Role::History, t(9)),
            stamp(3),
            "retired, it remembers when it served"
        );
        assert_eq!(
            promotion_stamp(Some("history"), Some(&kept), Role::Stable, t(9)),
            stamp(9),
            "serving again: the newer time"
        );
        assert_eq!(
            promotion_stamp(Some("stable"), None, Role::Stable, t(9)),
            stamp(9),
            "a stable revision from before stamps were kept"
        );
    }

    use super::*;
    use serde_json::json;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": image}]}})).unwrap()
    }

    #[test]
    fn a_template_hashes_to_the_same_revision_in_every_version_of_the_operator() {
        // An upgrade that changed this hash would start a new revision of every Rollout.
        assert_eq!(template_hash(&template("web:1")), "wmqnbst42q");
        assert_eq!(
            hash_text(r#"{"metadata":{"labels":{"app":"web"}}}"#),
            "q4hhzhdfhx"
        );
    }

    #[test]
    fn a_changed_image_changes_the_revision() {
        assert_ne!(
            template_hash(&template("web:1")),
            template_hash(&template("web:2"))
        );
        assert_eq!(template_hash(&template("web:1")).len(), HASH_LEN);
    }

    #[test]
    fn deployment_names_fit_in_a_label_value() {
        let name = deployment_name(&"r".repeat(52), &template_hash(&template("x")));
        assert!(name.len() <= 63);
    }
}
