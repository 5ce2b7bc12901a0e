//! YAML reading and writing shared by the CLI, the CRD generator and the sim.

use serde::{Serialize, de::DeserializeOwned};

/// A YAML document could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    /// The text is not valid YAML or does not fit the expected shape.
    #[error("{0}")]
    Parse(String),
}

/// Renders a value as a YAML document (without the leading `---`).
pub fn to_string<T: Serialize>(value: &T) -> String {
    // Serializing plain JSON-shaped data cannot fail; fall back to JSON (valid YAML) if it does.
    serde_saphyr::to_string(value)
        .unwrap_or_else(|_| serde_json::to_string_pretty(value).unwrap_or_default() + "\n")
}

/// Parses one YAML document.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str(text).map_err(|e| YamlError::Parse(e.to_string()))
}

/// Parses a multi-document YAML stream; empty documents are dropped.
pub fn from_multi_str<T: DeserializeOwned>(text: &str) -> Result<Vec<Option<T>>, YamlError> {
    serde_saphyr::from_multiple::<Option<T>>(text).map_err(|e| YamlError::Parse(e.to_string()))
}
