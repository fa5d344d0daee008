//! The core's one error type.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    #[error("invalid quantity \"{value}\": {reason}")]
    Quantity { value: String, reason: &'static str },

    #[error("invalid requirement on {key:?}: {reason}")]
    Requirement { key: String, reason: String },

    #[error("invalid {kind} {name:?}: {reason}")]
    Invalid {
        kind: &'static str,
        name: String,
        reason: String,
    },

    /// A NodePool or EC2NodeClass refused; it names itself and the field.
    #[error(transparent)]
    Config(#[from] crate::api::ConfigError),

    #[error("cannot parse {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("embedded catalog is damaged: {0}")]
    Catalog(String),
}

impl Error {
    pub(crate) fn quantity(value: &str, reason: &'static str) -> Self {
        Error::Quantity {
            value: value.to_string(),
            reason,
        }
    }

    pub(crate) fn invalid(kind: &'static str, name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            kind,
            name: name.into(),
            reason: reason.into(),
        }
    }
}

/// An error and its causes on one line, skipping a cause its parent already quoted (many
/// errors here include their source's message).
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
