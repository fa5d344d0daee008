//! Why a NodePool or EC2NodeClass is refused: the one error of parsing and validating them.

use std::fmt;

/// A NodePool or EC2NodeClass that does not match its schema or fails validation. Its Display
/// names the object and the field (`NodePool default: spec.template.spec.expireAfter: …`), so
/// every reader (the Kubernetes adapter, `nodewright plan`, the simulator) reports it as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `Kind name` (`NodePool default`); the kind alone when the object has no name.
    pub object: String,
    /// The field's path (`spec.limits.cpu`, `spec.disruption.budgets[0].nodes`); empty when
    /// the object as a whole is at fault.
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(object: impl Into<String>, field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            object: object.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.object, self.reason)
        } else {
            write!(f, "{}: {}: {}", self.object, self.field, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// `Kind name` of an object as written: its `kind` (`object` when it has none) and its
/// `metadata.name` when it has one.
pub(crate) fn describe(value: &serde_json::Value) -> String {
    let kind = value
        .get("kind")
        .and_then(serde_json::Value::as_str)
        .filter(|k| !k.is_empty())
        .unwrap_or("object");
    match value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(serde_json::Value::as_str)
        .filter(|n| !n.is_empty())
    {
        Some(name) => format!("{kind} {name}"),
        None => kind.to_string(),
    }
}

/// Deserializes `value` strictly (unknown fields are errors), naming the field at fault.
pub(crate) fn from_value<T: serde::de::DeserializeOwned>(
    value: &serde_json::Value,
    object: &str,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        // The root's path prints as "."; the object as a whole is no field.
        let field = if e.path().iter().next().is_some() {
            e.path().to_string()
        } else {
            String::new()
        };
        ConfigError::new(object, field, e.into_inner().to_string())
    })
}
