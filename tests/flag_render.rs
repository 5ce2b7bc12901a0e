//! Rendered flag files read by a client no one here wrote: the official OpenFeature flagd
//! provider for Rust in file mode. Also validated against flagd's published JSON schema as
//! shipped in that crate.

use cutover::{
    api::{FeatureFlag, FeatureFlagStatus},
    flag::render,
};
use open_feature::{EvaluationContext, provider::FeatureProvider};
use open_feature_flagd::{FlagdOptions, FlagdProvider, ResolverType};
use serde_json::{Value, json};

fn flag(name: &str, spec: Value, percentage: Option<i32>) -> FeatureFlag {
    let mut f: FeatureFlag = serde_json::from_value(json!({"apiVersion": "cutover.dev/v1alpha1",
        "kind": "FeatureFlag", "metadata": {"name": name, "namespace": "default",
            "creationTimestamp": "2027-01-01T00:00:00Z"}, "spec": spec}))
    .unwrap();
    f.status = percentage.map(|p| FeatureFlagStatus {
        percentage: Some(p),
        ..Default::default()
    });
    f
}

fn checkout(percentage: i32) -> FeatureFlag {
    flag(
        "new-checkout",
        json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
            "output": {"configMap": {"name": "flags"}},
            "rollout": {"variant": "on", "steps": [5, 20, 50, 100]}}),
        Some(percentage),
    )
}

async fn provider(document: &str) -> (FlagdProvider, std::path::PathBuf) {
    let path = std::env::temp_dir().join(format!(
        "cutover-flags-{}-{}.json",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::write(&path, document).unwrap();
    let provider = FlagdProvider::new(FlagdOptions {
        resolver_type: ResolverType::File,
        source_configuration: Some(path.display().to_string()),
        cache_settings: None,
        ..Default::default()
    })
    .await
    .expect("the flagd provider reads the rendered file");
    (provider, path)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn user(key: &str) -> EvaluationContext {
    EvaluationContext::default().with_targeting_key(key.to_string())
}

/// Keys given the variant out of `keys`.
async fn enabled(percentage: i32, keys: &[String]) -> Vec<bool> {
    let f = checkout(percentage);
    let (p, path) = provider(&render::document(&[&f])).await;
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        out.push(
            p.resolve_bool_value("new-checkout", &user(k))
                .await
                .expect("resolves")
                .value,
        );
    }
    let _ = std::fs::remove_file(path);
    out
}

/// Pseudo-random user keys (xorshift), the same on every run.
fn keys(n: usize) -> Vec<String> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("user-{x:016x}")
        })
        .collect()
}

#[tokio::test]
async fn flags_resolve_to_their_variants() {
    let plain = flag(
        "theme",
        json!({"state": "ENABLED", "variants": {"light": "light", "dark": "dark"}, "defaultVariant": "dark",
            "metadata": {"owner": "web"},
            "targeting": {"if": [{"==": [{"var": "plan"}, "pro"]}, "light", null]},
            "output": {"configMap": {"name": "flags"}}}),
        None,
    );
    let off = flag(
        "kill-me",
        json!({"state": "DISABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on",
            "output": {"configMap": {"name": "flags"}}}),
        None,
    );
    let full = checkout(100);
    let (p, path) = provider(&render::document(&[&plain, &off, &full])).await;
    let r = p.resolve_string_value("theme", &user("a")).await.unwrap();
    assert_eq!(r.value, "dark");
    let mut pro = user("b");
    pro = pro.with_custom_field("plan", "pro");
    assert_eq!(
        p.resolve_string_value("theme", &pro).await.unwrap().value,
        "light"
    );
    assert!(
        p.resolve_bool_value("kill-me", &user("a")).await.is_err(),
        "a DISABLED flag makes applications use their code default"
    );
    assert!(
        p.resolve_bool_value("new-checkout", &user("c"))
            .await
            .unwrap()
            .value,
        "100 %"
    );
    let none = checkout(0);
    let (p0, path0) = provider(&render::document(&[&none])).await;
    assert!(
        !p0.resolve_bool_value("new-checkout", &user("c"))
            .await
            .unwrap()
            .value,
        "0 %"
    );
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path0);
}

#[tokio::test]
async fn a_user_given_the_variant_keeps_it_as_the_percentage_grows() {
    let keys = keys(5_000);
    let mut before = vec![false; keys.len()];
    for percentage in [5, 20, 50, 100] {
        let now = enabled(percentage, &keys).await;
        for (i, (was, is)) in before.iter().zip(&now).enumerate() {
            assert!(
                !*was || *is,
                "{} lost the variant at {percentage} %",
                keys[i]
            );
        }
        before = now;
    }
    assert!(before.iter().all(|e| *e));
}

#[tokio::test]
async fn twenty_percent_of_many_users_get_the_variant() {
    let keys = keys(100_000);
    let on = enabled(20, &keys).await.iter().filter(|e| **e).count();
    let share = on as f64 / keys.len() as f64;
    assert!((0.19..=0.21).contains(&share), "share {share}");
}

/// The flagd schema files shipped in the open-feature-flagd crate: its source is in Cargo's
/// registry (this test depends on it), at the version Cargo.lock names. No `cargo
/// metadata`: offline it fails where the registry lacks other platforms' crates.
fn flagd_schemas() -> (Value, Value) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).expect("Cargo.lock");
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"open-feature-flagd\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .expect("open-feature-flagd is locked")
        .trim_matches('"')
        .to_string();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let crate_dir = format!("open-feature-flagd-{version}");
    let dir = std::fs::read_dir(cargo_home.join("registry/src"))
        .expect("Cargo's registry sources")
        .flatten()
        .map(|index| index.path().join(&crate_dir).join("schemas/json"))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| panic!("{crate_dir} not found under {}", cargo_home.display()));
    let read = |f: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap()
    };
    (read("flags.json"), read("targeting.json"))
}

#[test]
fn rendered_files_validate_against_the_flagd_schema() {
    let (flags, targeting) = flagd_schemas();
    let registry = jsonschema::Registry::new()
        .add("https://flagd.dev/schema/v0/flags.json", flags)
        .unwrap()
        .add("https://flagd.dev/schema/v0/targeting.json", targeting)
        .unwrap()
        .prepare()
        .unwrap();
    let validator = jsonschema::options()
        .with_registry(&registry)
        .build(&json!({"$ref": "https://flagd.dev/schema/v0/flags.json"}))
        .expect("the flagd schema compiles");
    let rich = flag(
        "theme",
        json!({"state": "ENABLED", "variants": {"light": "light", "dark": "dark"}, "defaultVariant": "dark",
            "metadata": {"owner": "web", "ticket": 42},
            "targeting": {"if": [{"==": [{"var": "plan"}, "pro"]}, "light", null]},
            "output": {"configMap": {"name": "flags"}}}),
        None,
    );
    for percentage in [0, 20, 100] {
        let text = render::document(&[&rich, &checkout(percentage)]);
        let doc: Value = serde_json::from_str(&text).unwrap();
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{percentage} %: {errors:?}\n{text}");
    }
    // The validator is not vacuous: a broken flag is rejected.
    let broken = json!({"flags": {"x": {"state": "MAYBE", "variants": {}, "defaultVariant": 1}}});
    assert!(!validator.is_valid(&broken));
}

/// The program of docs/flags.md, through the OpenFeature SDK's client as an application
/// uses it: a rendered file read in file mode, the code default when a flag is DISABLED.
#[tokio::test]
async fn an_application_reads_the_flags_through_the_openfeature_sdk() {
    use open_feature::OpenFeature;
    let off = flag(
        "kill-me",
        json!({"state": "DISABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on",
            "output": {"configMap": {"name": "flags"}}}),
        None,
    );
    let (provider, path) = provider(&render::document(&[&checkout(100), &off])).await;
    let mut api = OpenFeature::singleton_mut().await;
    api.set_provider(provider).await;
    let client = api.create_client();
    drop(api);
    let ctx = EvaluationContext::default().with_targeting_key("user-4711");
    let new_checkout = client
        .get_bool_value("new-checkout", Some(&ctx), None)
        .await
        .unwrap_or(false);
    assert!(new_checkout);
    let killed = client
        .get_bool_value("kill-me", Some(&ctx), None)
        .await
        .unwrap_or(false);
    assert!(!killed, "the code default, not the flag's defaultVariant");
    let _ = std::fs::remove_file(path);
}
