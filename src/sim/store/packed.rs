//! Objects kept as compact JSON text: a parsed `Value` takes several times the memory of its
//! text, and the store holds every object plus a history of past versions.

use std::sync::Arc;

use serde_json::Value;

/// An object as compact JSON text, shared between the store and its watch history, with
/// the labels selectors read kept parsed beside it.
#[derive(Clone, Debug, PartialEq)]
pub struct Packed(Arc<Inner>);

#[derive(Debug, PartialEq)]
struct Inner {
    text: Box<str>,
    labels: Option<Value>,
    resource_version: u64,
}

impl Packed {
    /// Packs an object.
    pub fn pack(object: &Value) -> Self {
        let meta = object.get("metadata");
        Self(Arc::new(Inner {
            // A Value always serializes: its map keys are strings.
            text: serde_json::to_string(object).unwrap_or_default().into(),
            labels: meta.and_then(|m| m.get("labels")).cloned(),
            resource_version: meta
                .and_then(|m| m.get("resourceVersion"))
                .and_then(Value::as_str)
                .and_then(|rv| rv.parse().ok())
                .unwrap_or(0),
        }))
    }

    /// The object, parsed.
    pub fn unpack(&self) -> Value {
        serde_json::from_str(&self.0.text).unwrap_or(Value::Null)
    }

    /// The object's `metadata.labels`.
    pub fn labels(&self) -> Option<&Value> {
        self.0.labels.as_ref()
    }

    /// The object's `metadata.resourceVersion` as a number (0 when absent).
    pub fn resource_version(&self) -> u64 {
        self.0.resource_version
    }

    /// Identity of this version, shared by every copy of it.
    pub fn addr(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// The JSON text.
    pub fn text(&self) -> &str {
        &self.0.text
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn round_trips_and_reads_labels_alone() {
        let object = json!({"metadata": {"name": "a", "labels": {"app": "web"}}, "spec": {"x": [1, 2.5, null]}});
        let packed = Packed::pack(&object);
        assert_eq!(packed.unpack(), object);
        assert_eq!(packed.labels(), Some(&json!({"app": "web"})));
        assert_eq!(Packed::pack(&json!({"spec": {}})).labels(), None);
    }
}
