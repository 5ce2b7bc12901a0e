//! Errors of the controller runtime and the categories every controller error maps to.

/// Bounded set of error categories, used as metric labels and Event reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCategory {
    /// The object's spec cannot be acted on until a person fixes it.
    InvalidSpec,
    /// A write lost an optimistic-concurrency race; retry with fresh state.
    Conflict,
    /// The API server or a dependency failed in a way worth retrying.
    Transient,
    /// A referenced object does not exist.
    NotFound,
    /// A bug or an impossible state.
    Internal,
}

impl ErrorCategory {
    /// Every category.
    pub const ALL: [Self; 5] = [
        Self::InvalidSpec,
        Self::Conflict,
        Self::Transient,
        Self::NotFound,
        Self::Internal,
    ];

    /// Label value for metrics and Event reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidSpec => "InvalidSpec",
            Self::Conflict => "Conflict",
            Self::Transient => "Transient",
            Self::NotFound => "NotFound",
            Self::Internal => "Internal",
        }
    }
}

/// Errors raised while running controllers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The object's spec is invalid.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// A referenced object is missing.
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// Kind of the missing object.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A value could not be encoded or decoded.
    #[error("serialization: {0}")]
    Serialization(#[from] serde_json::Error),
    /// An impossible state.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// The category of this error.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Self::Kube(kube::Error::Api(status)) => match status.code {
                409 => ErrorCategory::Conflict,
                404 => ErrorCategory::NotFound,
                400 | 422 => ErrorCategory::InvalidSpec,
                _ => ErrorCategory::Transient,
            },
            Self::Kube(_) => ErrorCategory::Transient,
            Self::InvalidSpec(_) => ErrorCategory::InvalidSpec,
            Self::NotFound { .. } => ErrorCategory::NotFound,
            Self::Serialization(_) | Self::Internal(_) => ErrorCategory::Internal,
        }
    }
}

/// Renders an error and its sources on one line, for logs and CLI messages.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts
        .join(": ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> Error {
        let status = kube::core::Status::failure("boom", "Reason").with_code(code);
        Error::Kube(kube::Error::Api(Box::new(status)))
    }

    #[test]
    fn api_status_codes_map_to_categories() {
        assert_eq!(api_error(409).category(), ErrorCategory::Conflict);
        assert_eq!(api_error(404).category(), ErrorCategory::NotFound);
        assert_eq!(api_error(422).category(), ErrorCategory::InvalidSpec);
        assert_eq!(api_error(500).category(), ErrorCategory::Transient);
        assert_eq!(api_error(429).category(), ErrorCategory::Transient);
        assert_eq!(
            Error::InvalidSpec("x".into()).category(),
            ErrorCategory::InvalidSpec
        );
        assert_eq!(
            Error::Internal("x".into()).category(),
            ErrorCategory::Internal
        );
    }

    #[test]
    fn one_line_joins_sources_without_newlines() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer\nline")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        assert_eq!(one_line(&e), "outer line: connection refused");
    }
}
