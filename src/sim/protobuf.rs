//! Kubernetes' protobuf wire format: the `k8s\0` envelope around a `runtime.Unknown` that
//! kubectl's imperative commands and client-go's typed clients send, decoded into the JSON
//! objects the sim stores, as kube-apiserver would decode it and encode the result as JSON.

use std::{
    collections::{HashMap, HashSet},
    sync::OnceLock,
};

use base64::Engine;
use prost_reflect::{
    DescriptorPool, DynamicMessage, MapKey, MessageDescriptor, ReflectMessage, Value as Proto,
};
use serde_json::{Map, Value, json};

/// The descriptors of every built-in kind of the Kubernetes version the test bed runs
/// (`scripts/kube-protos` regenerates them).
const DESCRIPTORS: &[u8] = include_bytes!("kubernetes.desc");

/// Per message, what Go's JSON encoding does that the descriptors do not say (from the
/// same sources, by `scripts/kube-protos`).
const FIELDS: &str = include_str!("kubernetes-fields.json");

/// What Go's JSON encoding does with a message's fields, beyond their protobuf names.
#[derive(Debug, Default, serde::Deserialize)]
struct FieldRules {
    /// Fields written even when zero: pointers, where zero differs from unset, and the
    /// fields without `omitempty`.
    #[serde(default)]
    zero: HashSet<String>,
    /// Embedded structs, whose fields JSON writes in the enclosing object.
    #[serde(default)]
    inline: HashSet<String>,
    /// Fields whose JSON name differs from the protobuf one.
    #[serde(default)]
    rename: HashMap<String, String>,
}

fn rules(message: &str) -> Option<&'static FieldRules> {
    static RULES: OnceLock<HashMap<String, FieldRules>> = OnceLock::new();
    RULES
        .get_or_init(|| serde_json::from_str(FIELDS).unwrap_or_default())
        .get(message)
}

/// What opens every protobuf body Kubernetes sends.
const MAGIC: &[u8] = b"k8s\0";

const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";

/// Why a protobuf body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not open with Kubernetes' envelope.
    #[error("the body is not a Kubernetes protobuf object: it does not begin with \"k8s\\0\"")]
    NoEnvelope,
    /// The envelope or the object inside it is not valid protobuf.
    #[error("cannot decode the protobuf body: {0}")]
    Decode(String),
    /// The envelope names a kind no built-in API group has.
    #[error("no built-in kind {kind:?} in {api_version:?} to decode the protobuf body as")]
    UnknownKind {
        /// `apiVersion` in the envelope.
        api_version: String,
        /// `kind` in the envelope.
        kind: String,
    },
    /// The embedded descriptors could not be loaded.
    #[error("the protobuf descriptors are unreadable: {0}")]
    Descriptors(String),
}

fn pool() -> Result<&'static DescriptorPool, ProtobufError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(DESCRIPTORS).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| ProtobufError::Descriptors(e.clone()))
}

/// The protobuf package of an API group's version, as `k8s.io/api` names them.
fn package(group: &str, version: &str) -> String {
    let short = match group {
        "" => "core",
        "internal.apiserver.k8s.io" => "apiserverinternal",
        g => g.split('.').next().unwrap_or(g),
    };
    format!("k8s.io.api.{short}.{version}")
}

/// The message of a kind: the group's own, else one every group shares (`DeleteOptions`).
fn message_for(api_version: &str, kind: &str) -> Result<MessageDescriptor, ProtobufError> {
    let pool = pool()?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    pool.get_message_by_name(&format!("{}.{kind}", package(group, version)))
        .or_else(|| pool.get_message_by_name(&format!("{META}.{kind}")))
        .ok_or_else(|| ProtobufError::UnknownKind {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        })
}

/// Decodes a protobuf body into the JSON object it stands for.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::NoEnvelope)?;
    let pool = pool()?;
    let unknown = pool
        .get_message_by_name("k8s.io.apimachinery.pkg.runtime.Unknown")
        .ok_or_else(|| ProtobufError::Descriptors("runtime.Unknown is missing".into()))?;
    let envelope =
        DynamicMessage::decode(unknown, rest).map_err(|e| ProtobufError::Decode(e.to_string()))?;
    let text =
        |message: &DynamicMessage, name: &str| match message.get_field_by_name(name).as_deref() {
            Some(Proto::String(s)) => s.clone(),
            _ => String::new(),
        };
    let type_meta = match envelope.get_field_by_name("typeMeta").as_deref() {
        Some(Proto::Message(m)) => m.clone(),
        _ => return Err(ProtobufError::Decode("the envelope has no typeMeta".into())),
    };
    let (api_version, kind) = (text(&type_meta, "apiVersion"), text(&type_meta, "kind"));
    let raw = match envelope.get_field_by_name("raw").as_deref() {
        Some(Proto::Bytes(b)) => b.clone(),
        _ => Default::default(),
    };
    let object = DynamicMessage::decode(message_for(&api_version, &kind)?, raw)
        .map_err(|e| ProtobufError::Decode(e.to_string()))?;
    let mut value = message_to_json(&object);
    if let Some(map) = value.as_object_mut() {
        // The typed clients leave TypeMeta empty; the envelope carries it.
        map.insert("apiVersion".into(), json!(api_version));
        map.insert("kind".into(), json!(kind));
    }
    Ok(value)
}

/// A message as Kubernetes' JSON encoding writes it, with the types that encode themselves
/// differently (times, quantities, int-or-strings, raw JSON) in their JSON form.
fn message_to_json(message: &DynamicMessage) -> Value {
    let descriptor = message.descriptor();
    let field = |name: &str| message.get_field_by_name(name).map(|v| v.into_owned());
    let int = |name: &str| match field(name) {
        Some(Proto::I64(n)) => n,
        Some(Proto::I32(n)) => i64::from(n),
        _ => 0,
    };
    let bytes = |name: &str| match field(name) {
        Some(Proto::Bytes(b)) => b.to_vec(),
        _ => Vec::new(),
    };
    let name = descriptor.full_name();
    match name.strip_prefix("k8s.io.apimachinery.pkg.") {
        Some("apis.meta.v1.Time") => return time(int("seconds"), 0, false),
        Some("apis.meta.v1.MicroTime") => return time(int("seconds"), int("nanos"), true),
        Some("apis.meta.v1.Duration") => return json!(go_duration(int("duration"))),
        Some("api.resource.Quantity") => {
            return match field("string") {
                Some(Proto::String(s)) => json!(s),
                _ => json!("0"),
            };
        }
        Some("util.intstr.IntOrString") => {
            return match (int("type"), field("strVal")) {
                (1, Some(Proto::String(s))) => json!(s),
                (1, _) => json!(""),
                _ => json!(int("intVal")),
            };
        }
        Some("runtime.RawExtension") => {
            return serde_json::from_slice(&bytes("raw")).unwrap_or(Value::Null);
        }
        Some("apis.meta.v1.FieldsV1") => {
            return serde_json::from_slice(&bytes("Raw")).unwrap_or(Value::Null);
        }
        _ => {}
    }
    // Kubernetes' named string lists (`ExtraValue`, `Verbs`) are one repeated field `items`
    // in protobuf and a bare list in JSON.
    let only_items = descriptor.fields().len() == 1
        && descriptor
            .fields()
            .all(|f| f.name() == "items" && f.is_list());
    if only_items {
        return match field("items") {
            Some(Proto::List(items)) => Value::Array(items.iter().map(value_to_json).collect()),
            _ => json!([]),
        };
    }
    let rules = rules(name);
    let mut out = Map::new();
    for (field, value) in message.fields() {
        let proto_name = field.name();
        let converted = value_to_json(value);
        if rules.is_some_and(|r| r.inline.contains(proto_name)) {
            if let Value::Object(inner) = converted {
                out.extend(inner);
            }
            continue;
        }
        // Go's JSON leaves out a zero `omitempty` field; the wire carries every non-pointer
        // field, so only the rules tell a zero that was set from one that was not.
        let zero = matches!(&converted, Value::String(s) if s.is_empty())
            || converted.as_f64() == Some(0.0)
            || converted == json!(false);
        let keep = match &converted {
            Value::Null => false,
            _ if zero => rules.is_some_and(|r| r.zero.contains(proto_name)),
            _ => true,
        };
        if keep {
            let json_name = rules
                .and_then(|r| r.rename.get(proto_name))
                .map_or(proto_name, String::as_str);
            out.insert(json_name.to_string(), converted);
        }
    }
    Value::Object(out)
}

fn value_to_json(value: &Proto) -> Value {
    match value {
        Proto::Bool(b) => json!(b),
        Proto::I32(n) => json!(n),
        Proto::I64(n) => json!(n),
        Proto::U32(n) => json!(n),
        Proto::U64(n) => json!(n),
        Proto::F32(n) => json!(n),
        Proto::F64(n) => json!(n),
        Proto::String(s) => json!(s),
        Proto::Bytes(b) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        Proto::EnumNumber(n) => json!(n),
        Proto::Message(m) => message_to_json(m),
        Proto::List(items) => Value::Array(items.iter().map(value_to_json).collect()),
        Proto::Map(entries) => {
            let mut sorted: Vec<(String, Value)> = entries
                .iter()
                .map(|(k, v)| (map_key(k), value_to_json(v)))
                .collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(sorted.into_iter().collect())
        }
    }
}

fn map_key(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

/// RFC 3339 in UTC, to the second (`Time`) or the microsecond (`MicroTime`); the zero time
/// is `null`, as Go writes it.
fn time(seconds: i64, nanos: i64, micro: bool) -> Value {
    if seconds == 0 && nanos == 0 {
        return Value::Null;
    }
    let Ok(at) = jiff::Timestamp::new(seconds, i32::try_from(nanos).unwrap_or(0)) else {
        return Value::Null;
    };
    let format = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    json!(at.strftime(format).to_string())
}

/// A duration as Go prints one: `1h0m0s`, `1m30s`, `1.5s`, `250ms`, `0s`.
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let fraction = |value: u64, unit: u64, suffix: &str| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            format!("{whole}{suffix}")
        } else {
            let digits = unit.to_string().len() - 1;
            let text = format!("{rest:0digits$}");
            format!("{whole}.{}{suffix}", text.trim_end_matches('0'))
        }
    };
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}", fraction(n, 1_000, "µs"));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}", fraction(n, 1_000_000, "ms"));
    }
    let seconds = fraction(n % 60_000_000_000, 1_000_000_000, "s");
    let minutes = n / 60_000_000_000;
    match (minutes / 60, minutes % 60) {
        (0, 0) => format!("{sign}{seconds}"),
        (0, m) => format!("{sign}{m}m{seconds}"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Builds the body a typed client sends: the envelope around `object`'s encoding.
    fn envelope(api_version: &str, kind: &str, object: &DynamicMessage) -> Vec<u8> {
        let pool = pool().unwrap();
        let unknown = pool
            .get_message_by_name("k8s.io.apimachinery.pkg.runtime.Unknown")
            .unwrap();
        let meta = unknown
            .get_field_by_name("typeMeta")
            .unwrap()
            .kind()
            .as_message()
            .unwrap()
            .clone();
        let mut type_meta = DynamicMessage::new(meta);
        type_meta.set_field_by_name("apiVersion", Proto::String(api_version.into()));
        type_meta.set_field_by_name("kind", Proto::String(kind.into()));
        let mut outer = DynamicMessage::new(unknown);
        outer.set_field_by_name("typeMeta", Proto::Message(type_meta));
        outer.set_field_by_name("raw", Proto::Bytes(object.encode_to_vec().into()));
        outer.set_field_by_name("contentEncoding", Proto::String(String::new()));
        outer.set_field_by_name("contentType", Proto::String(String::new()));
        [MAGIC, &outer.encode_to_vec()].concat()
    }

    fn message(name: &str) -> DynamicMessage {
        DynamicMessage::new(pool().unwrap().get_message_by_name(name).unwrap())
    }

    fn sub(parent: &DynamicMessage, field: &str) -> DynamicMessage {
        let kind = parent
            .descriptor()
            .get_field_by_name(field)
            .unwrap()
            .kind()
            .as_message()
            .unwrap()
            .clone();
        DynamicMessage::new(kind)
    }

    #[test]
    fn every_built_in_group_of_the_target_version_is_described() {
        for (api_version, kind) in [
            ("v1", "Namespace"),
            ("v1", "ConfigMap"),
            ("apps/v1", "StatefulSet"),
            ("batch/v1", "CronJob"),
            ("networking.k8s.io/v1", "Ingress"),
            ("policy/v1", "PodDisruptionBudget"),
            ("rbac.authorization.k8s.io/v1", "ClusterRole"),
            ("autoscaling/v2", "HorizontalPodAutoscaler"),
            ("v1", "DeleteOptions"),
        ] {
            assert!(
                message_for(api_version, kind).is_ok(),
                "{api_version} {kind}"
            );
        }
        assert!(matches!(
            message_for("example.com/v1", "Widget"),
            Err(ProtobufError::UnknownKind { .. })
        ));
    }

    #[test]
    fn a_config_map_decodes_to_the_json_kubectl_would_have_sent() {
        let mut cm = message("k8s.io.api.core.v1.ConfigMap");
        let mut meta = sub(&cm, "metadata");
        meta.set_field_by_name("name", Proto::String("settings".into()));
        meta.set_field_by_name("namespace", Proto::String("demo".into()));
        // Go writes every non-pointer field; the empty ones are not in its JSON.
        meta.set_field_by_name("generateName", Proto::String(String::new()));
        meta.set_field_by_name("generation", Proto::I64(0));
        let mut data = std::collections::HashMap::new();
        data.insert(MapKey::String("mode".into()), Proto::String("fast".into()));
        cm.set_field_by_name("metadata", Proto::Message(meta));
        cm.set_field_by_name("data", Proto::Map(data));
        let mut binary = std::collections::HashMap::new();
        binary.insert(
            MapKey::String("blob".into()),
            Proto::Bytes(vec![0u8, 1, 2].into()),
        );
        cm.set_field_by_name("binaryData", Proto::Map(binary));
        let decoded = decode(&envelope("v1", "ConfigMap", &cm)).unwrap();
        assert_eq!(
            decoded,
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "settings", "namespace": "demo"},
                "data": {"mode": "fast"},
                "binaryData": {"blob": "AAEC"},
            })
        );
    }

    #[test]
    fn quantities_int_or_strings_and_times_take_their_json_form() {
        let mut deployment = message("k8s.io.api.apps.v1.Deployment");
        let mut meta = sub(&deployment, "metadata");
        let mut created = sub(&meta, "creationTimestamp");
        created.set_field_by_name("seconds", Proto::I64(1_764_000_000));
        meta.set_field_by_name("creationTimestamp", Proto::Message(created));
        let mut spec = sub(&deployment, "spec");
        spec.set_field_by_name("replicas", Proto::I32(3));
        let mut strategy = sub(&spec, "strategy");
        let mut rolling = sub(&strategy, "rollingUpdate");
        let mut surge = sub(&rolling, "maxSurge");
        surge.set_field_by_name("type", Proto::I64(1));
        surge.set_field_by_name("strVal", Proto::String("25%".into()));
        let mut unavailable = sub(&rolling, "maxUnavailable");
        unavailable.set_field_by_name("type", Proto::I64(0));
        unavailable.set_field_by_name("intVal", Proto::I32(1));
        rolling.set_field_by_name("maxSurge", Proto::Message(surge));
        rolling.set_field_by_name("maxUnavailable", Proto::Message(unavailable));
        strategy.set_field_by_name("rollingUpdate", Proto::Message(rolling));
        spec.set_field_by_name("strategy", Proto::Message(strategy));
        let mut template = sub(&spec, "template");
        let mut pod = sub(&template, "spec");
        let container_kind = pod
            .descriptor()
            .get_field_by_name("containers")
            .unwrap()
            .kind()
            .as_message()
            .unwrap()
            .clone();
        let mut container = DynamicMessage::new(container_kind);
        container.set_field_by_name("name", Proto::String("web".into()));
        container.set_field_by_name("image", Proto::String("nginx:1.27".into()));
        let mut resources = sub(&container, "resources");
        let quantity = resources
            .descriptor()
            .get_field_by_name("limits")
            .unwrap()
            .kind()
            .as_message()
            .unwrap()
            .map_entry_value_field()
            .kind()
            .as_message()
            .unwrap()
            .clone();
        let mut cpu = DynamicMessage::new(quantity);
        cpu.set_field_by_name("string", Proto::String("500m".into()));
        let mut limits = std::collections::HashMap::new();
        limits.insert(MapKey::String("cpu".into()), Proto::Message(cpu));
        resources.set_field_by_name("limits", Proto::Map(limits));
        container.set_field_by_name("resources", Proto::Message(resources));
        pod.set_field_by_name("containers", Proto::List(vec![Proto::Message(container)]));
        template.set_field_by_name("spec", Proto::Message(pod));
        spec.set_field_by_name("template", Proto::Message(template));
        deployment.set_field_by_name("metadata", Proto::Message(meta));
        deployment.set_field_by_name("spec", Proto::Message(spec));
        let decoded = decode(&envelope("apps/v1", "Deployment", &deployment)).unwrap();
        assert_eq!(
            decoded["metadata"]["creationTimestamp"],
            json!("2025-11-24T16:00:00Z")
        );
        assert_eq!(decoded["spec"]["replicas"], json!(3));
        assert_eq!(
            decoded["spec"]["strategy"]["rollingUpdate"],
            json!({"maxSurge": "25%", "maxUnavailable": 1})
        );
        assert_eq!(
            decoded["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "image": "nginx:1.27", "resources": {"limits": {"cpu": "500m"}}}])
        );
    }

    #[test]
    fn embedded_structs_are_inlined_and_only_pointers_keep_their_zero() {
        let mut pod = message("k8s.io.api.core.v1.PodSpec");
        let volume_kind = pod
            .descriptor()
            .get_field_by_name("volumes")
            .unwrap()
            .kind()
            .as_message()
            .unwrap()
            .clone();
        let mut volume = DynamicMessage::new(volume_kind);
        volume.set_field_by_name("name", Proto::String("config".into()));
        let mut source = sub(&volume, "volumeSource");
        let mut config_map = sub(&source, "configMap");
        let mut reference = sub(&config_map, "localObjectReference");
        reference.set_field_by_name("name", Proto::String("settings".into()));
        config_map.set_field_by_name("localObjectReference", Proto::Message(reference));
        config_map.set_field_by_name("defaultMode", Proto::I32(0));
        source.set_field_by_name("configMap", Proto::Message(config_map));
        volume.set_field_by_name("volumeSource", Proto::Message(source));
        pod.set_field_by_name("volumes", Proto::List(vec![Proto::Message(volume)]));
        let mut security = sub(&pod, "securityContext");
        security.set_field_by_name("runAsUser", Proto::I64(0));
        pod.set_field_by_name("securityContext", Proto::Message(security));
        pod.set_field_by_name("hostNetwork", Proto::Bool(false));
        pod.set_field_by_name("restartPolicy", Proto::String(String::new()));
        assert_eq!(
            message_to_json(&pod),
            json!({
                "volumes": [{"name": "config", "configMap": {"name": "settings", "defaultMode": 0}}],
                "securityContext": {"runAsUser": 0},
            })
        );
    }

    #[test]
    fn a_zero_time_is_left_out_as_go_leaves_it() {
        let mut ns = message("k8s.io.api.core.v1.Namespace");
        let mut meta = sub(&ns, "metadata");
        meta.set_field_by_name("name", Proto::String("demo".into()));
        let zero = sub(&meta, "creationTimestamp");
        meta.set_field_by_name("creationTimestamp", Proto::Message(zero));
        ns.set_field_by_name("metadata", Proto::Message(meta));
        let decoded = decode(&envelope("v1", "Namespace", &ns)).unwrap();
        assert_eq!(decoded["metadata"], json!({"name": "demo"}));
    }

    #[test]
    fn a_body_that_is_not_kubernetes_protobuf_is_refused_with_why() {
        assert!(matches!(
            decode(b"{\"kind\":\"Pod\"}"),
            Err(ProtobufError::NoEnvelope)
        ));
        assert!(matches!(
            decode(b"k8s\0\xff\xff\xff"),
            Err(ProtobufError::Decode(_))
        ));
    }

    #[test]
    fn durations_print_as_go_prints_them() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(250_000_000), "250ms");
        assert_eq!(go_duration(-2_000_000_000), "-2s");
    }
}
