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
    labels: Labels,
    resource_version: u64,
}

/// An object's string-valued labels as two blocks: their keys and values run together, and
/// where each ends. A parsed map took about 800 bytes in some ten blocks per labelled object.
#[derive(Debug, Default, PartialEq)]
struct Labels {
    text: Box<str>,
    ends: Box<[usize]>,
}

impl Labels {
    fn new(labels: Option<&Value>) -> Self {
        let Some(map) = labels.and_then(Value::as_object) else {
            return Self::default();
        };
        let mut text = String::new();
        let mut ends = Vec::with_capacity(map.len() * 2);
        for (key, value) in map {
            // A label that is not a string is no label to a selector.
            if let Some(value) = value.as_str() {
                text.push_str(key);
                ends.push(text.len());
                text.push_str(value);
                ends.push(text.len());
            }
        }
        Self {
            text: text.into(),
            ends: ends.into(),
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        let mut start = 0;
        for pair in self.ends.chunks_exact(2) {
            let (key_end, value_end) = (pair[0], pair[1]);
            if self.text.get(start..key_end) == Some(key) {
                return self.text.get(key_end..value_end);
            }
            start = value_end;
        }
        None
    }
}

impl Packed {
    /// Packs an object.
    pub fn pack(object: &Value) -> Self {
        let meta = object.get("metadata");
        Self(Arc::new(Inner {
            // A Value always serializes: its map keys are strings.
            text: serde_json::to_string(object).unwrap_or_default().into(),
            labels: Labels::new(meta.and_then(|m| m.get("labels"))),
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

    /// The value of one of the object's labels.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.0.labels.get(key)
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
        assert_eq!(packed.label("app"), Some("web"));
        assert_eq!(packed.label("ap"), None);
        assert_eq!(Packed::pack(&json!({"spec": {}})).label("app"), None);
    }

    #[test]
    fn finds_each_label_and_only_string_ones() {
        let packed = Packed::pack(&json!({"metadata": {"labels": {
            "app": "web", "tier": "", "n": 3, "cutover.dev/role": "canary", "webapp": "x"}}}));
        assert_eq!(packed.label("app"), Some("web"));
        assert_eq!(packed.label("tier"), Some(""));
        assert_eq!(packed.label("cutover.dev/role"), Some("canary"));
        assert_eq!(packed.label("webapp"), Some("x"));
        assert_eq!(packed.label("n"), None);
        assert_eq!(packed.label("web"), None);
        assert_eq!(packed.label(""), None);
    }
}
