//! Objects kept as compressed compact JSON: a parsed `Value` takes several times the memory
//! of its text, and the store holds every object plus a history of past versions.

use std::sync::Arc;

use serde_json::Value;

/// An object as compressed compact JSON, shared between the store and its watch history,
/// with the labels selectors read kept beside it.
#[derive(Clone, Debug, PartialEq)]
pub struct Packed(Arc<Inner>);

#[derive(Debug, PartialEq)]
struct Inner {
    /// The JSON, LZ4-compressed (a fast codec: every read of the object decompresses it).
    body: Box<[u8]>,
    /// JSON the body refers back to. Objects of a type share most of their field names and
    /// values, and a small object alone has little to compress, so each is compressed
    /// against an earlier object of its type.
    dictionary: Option<Arc<[u8]>>,
    /// Bytes of the JSON.
    json_len: usize,
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
    /// Packs an object, compressed against `dictionary` when given.
    pub fn pack(object: &Value, dictionary: Option<&Arc<[u8]>>) -> Self {
        let meta = object.get("metadata");
        // A Value always serializes: its map keys are strings.
        let json = serde_json::to_vec(object).unwrap_or_default();
        let body = match dictionary {
            Some(d) => lz4_flex::block::compress_with_dict(&json, d),
            None => lz4_flex::block::compress(&json),
        };
        Self(Arc::new(Inner {
            body: body.into(),
            dictionary: dictionary.cloned(),
            json_len: json.len(),
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
        serde_json::from_slice(&self.json()).unwrap_or(Value::Null)
    }

    /// The compact JSON.
    pub fn json(&self) -> Vec<u8> {
        // The body was compressed from exactly `json_len` bytes here, so it decompresses.
        let inner = &self.0;
        match &inner.dictionary {
            Some(d) => lz4_flex::block::decompress_with_dict(&inner.body, inner.json_len, d),
            None => lz4_flex::block::decompress(&inner.body, inner.json_len),
        }
        .unwrap_or_default()
    }

    /// Bytes of the compact JSON.
    pub fn json_len(&self) -> usize {
        self.0.json_len
    }

    /// Bytes the JSON takes as stored.
    pub fn stored_len(&self) -> usize {
        self.0.body.len()
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
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn round_trips_and_reads_labels_alone() {
        let object = json!({"metadata": {"name": "a", "labels": {"app": "web"}}, "spec": {"x": [1, 2.5, null]}});
        let packed = Packed::pack(&object, None);
        assert_eq!(packed.unpack(), object);
        assert_eq!(packed.label("app"), Some("web"));
        assert_eq!(packed.label("ap"), None);
        assert_eq!(Packed::pack(&json!({"spec": {}}), None).label("app"), None);
    }

    #[test]
    fn finds_each_label_and_only_string_ones() {
        let packed = Packed::pack(
            &json!({"metadata": {"labels": {
            "app": "web", "tier": "", "n": 3, "cutover.dev/role": "canary", "webapp": "x"}}}),
            None,
        );
        assert_eq!(packed.label("app"), Some("web"));
        assert_eq!(packed.label("tier"), Some(""));
        assert_eq!(packed.label("cutover.dev/role"), Some("canary"));
        assert_eq!(packed.label("webapp"), Some("x"));
        assert_eq!(packed.label("n"), None);
        assert_eq!(packed.label("web"), None);
        assert_eq!(packed.label(""), None);
    }

    #[test]
    fn an_object_like_its_dictionary_is_stored_small_and_reads_back_whole() {
        let event = |i: usize| {
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": format!("app-{i}.18a2b3c4"), "namespace": "team-1"},
                "reason": "StepCompleted", "note": format!("step {i} of 4 completed"),
                "regarding": {"kind": "Rollout", "name": format!("app-{i}"), "namespace": "team-1"}})
        };
        let dictionary: Arc<[u8]> = Packed::pack(&event(1), None).json().into();
        let alone = Packed::pack(&event(2), None);
        let against = Packed::pack(&event(2), Some(&dictionary));
        assert_eq!(alone.unpack(), event(2));
        assert_eq!(against.unpack(), event(2));
        assert_eq!(
            against.json_len(),
            serde_json::to_vec(&event(2)).unwrap().len()
        );
        assert!(
            against.stored_len() * 3 < alone.stored_len(),
            "{} bytes against the dictionary, {} alone",
            against.stored_len(),
            alone.stored_len()
        );
        // An object unlike the dictionary still reads back.
        let other = json!({"spec": {"x": [1, 2.5, null], "y": "z".repeat(300)}});
        assert_eq!(Packed::pack(&other, Some(&dictionary)).unpack(), other);
    }
}
