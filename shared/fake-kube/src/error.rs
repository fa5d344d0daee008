//! The crate's one error type. Most variants are API failures and carry what the real API server
//! puts into its `Status` body; [`Error::status`] renders them exactly that way.

use std::fmt;

use serde_json::{Map, Value, json};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A resource qualified by its group, displayed as the API server does: `pods`,
/// `nodepools.karpenter.sh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl fmt::Display for GroupResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// A kind qualified by its group: `Pod`, `NodePool.karpenter.sh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupKind {
    pub group: String,
    pub kind: String,
}

impl fmt::Display for GroupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

/// One field error of an `Invalid` response (a `StatusCause`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub reason: String,
    pub field: String,
    pub message: String,
}

impl Cause {
    fn new(reason: &str, field: impl Into<String>, message: String) -> Self {
        Cause {
            reason: reason.to_string(),
            field: field.into(),
            message,
        }
    }

    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Cause::new("FieldValueRequired", field, message)
    }

    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        Cause::new(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {value}: {detail}"),
        )
    }

    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Cause::new("FieldValueForbidden", field, format!("Forbidden: {detail}"))
    }

    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Cause::new("FieldValueDuplicate", field, format!("Duplicate value: {value}"))
    }

    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let supported: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Cause::new(
            "FieldValueNotSupported",
            field,
            format!(
                "Unsupported value: {value}: supported values: {}",
                supported.join(", ")
            ),
        )
    }

    fn to_json(&self) -> Value {
        let mut cause = Map::new();
        cause.insert("reason".into(), json!(self.reason));
        cause.insert("message".into(), json!(self.message));
        if !self.field.is_empty() {
            cause.insert("field".into(), json!(self.field));
        }
        Value::Object(cause)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Joins field errors the way the API server's aggregate error does: one bare, several in `[...]`.
fn join_causes(causes: &[Cause]) -> String {
    match causes {
        [one] => one.to_string(),
        many => {
            let parts: Vec<String> = many.iter().map(ToString::to_string).collect();
            format!("[{}]", parts.join(", "))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{resource} \"{name}\" not found")]
    NotFound { resource: GroupResource, name: String },

    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists { resource: GroupResource, name: String },

    #[error("Operation cannot be fulfilled on {resource} \"{name}\": {detail}")]
    Conflict {
        resource: GroupResource,
        name: String,
        detail: String,
    },

    #[error("{kind} \"{name}\" is invalid: {}", join_causes(.causes))]
    Invalid {
        kind: GroupKind,
        name: String,
        causes: Vec<Cause>,
    },

    /// A 422 that is not about one object's fields, such as a JSON patch whose `test` failed.
    #[error("{0}")]
    Unprocessable(String),

    #[error("{0}")]
    BadRequest(String),

    #[error("{message}")]
    TooManyRequests { message: String, causes: Vec<Cause> },

    #[error("{0}")]
    MethodNotAllowed(String),

    #[error("{0}")]
    UnsupportedMediaType(String),

    /// A path no resource is served at.
    #[error("the server could not find the requested resource")]
    PathNotFound,

    #[error("Internal error occurred: {0}")]
    Internal(String),

    /// A failure injected by a test through `FakeApiServer::fail_next`.
    #[error("injected fault: {code}")]
    Injected { code: u16 },

    #[error("cannot start the fake API server: {0}")]
    Start(#[source] std::io::Error),

    #[error("cannot build a kube client for the fake API server: {0}")]
    Client(#[source] kube::Error),
}

impl Error {
    pub(crate) fn not_found(resource: GroupResource, name: &str) -> Self {
        Error::NotFound {
            resource,
            name: name.to_string(),
        }
    }

    pub(crate) fn conflict(resource: GroupResource, name: &str, detail: impl Into<String>) -> Self {
        Error::Conflict {
            resource,
            name: name.to_string(),
            detail: detail.into(),
        }
    }

    pub(crate) fn invalid(kind: GroupKind, name: &str, causes: Vec<Cause>) -> Self {
        Error::Invalid {
            kind,
            name: name.to_string(),
            causes,
        }
    }

    /// The HTTP code the real API server answers with.
    pub fn code(&self) -> u16 {
        match self {
            Error::NotFound { .. } | Error::PathNotFound => 404,
            Error::AlreadyExists { .. } | Error::Conflict { .. } => 409,
            Error::Invalid { .. } | Error::Unprocessable(_) => 422,
            Error::BadRequest(_) => 400,
            Error::TooManyRequests { .. } => 429,
            Error::MethodNotAllowed(_) => 405,
            Error::UnsupportedMediaType(_) => 415,
            Error::Injected { code } => *code,
            Error::Internal(_) | Error::Start(_) | Error::Client(_) => 500,
        }
    }

    /// The `Status.reason` the real API server gives for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::AlreadyExists { .. } => "AlreadyExists",
            other => reason_for_code(other.code()),
        }
    }

    /// The `Status` object the real API server sends for this failure.
    pub fn status(&self) -> Value {
        let mut details = Map::new();
        let mut put = |key: &str, value: &str| {
            if !value.is_empty() {
                details.insert(key.to_string(), json!(value));
            }
        };
        match self {
            Error::NotFound { resource, name }
            | Error::AlreadyExists { resource, name }
            | Error::Conflict { resource, name, .. } => {
                put("name", name);
                put("group", &resource.group);
                put("kind", &resource.resource);
            }
            Error::Invalid { kind, name, .. } => {
                put("name", name);
                put("group", &kind.group);
                put("kind", &kind.kind);
            }
            _ => {}
        }
        let causes = match self {
            Error::Invalid { causes, .. } | Error::TooManyRequests { causes, .. } => causes.clone(),
            _ => Vec::new(),
        };
        if !causes.is_empty() {
            details.insert(
                "causes".into(),
                Value::Array(causes.iter().map(Cause::to_json).collect()),
            );
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        if !details.is_empty()
            && let Some(object) = status.as_object_mut()
        {
            object.insert("details".into(), Value::Object(details));
        }
        status
    }
}

/// `metav1.StatusReason` for an HTTP code, as the API server's generic error responses use.
pub(crate) fn reason_for_code(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_status_names_the_qualified_resource() {
        let err = Error::not_found(
            GroupResource {
                group: "karpenter.sh".into(),
                resource: "nodepools".into(),
            },
            "default",
        );
        let status = err.status();
        assert_eq!(status["message"], "nodepools.karpenter.sh \"default\" not found");
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["code"], 404);
        assert_eq!(status["details"]["group"], "karpenter.sh");
        assert_eq!(status["details"]["kind"], "nodepools");
    }

    #[test]
    fn invalid_with_several_causes_lists_them_in_brackets() {
        let err = Error::invalid(
            GroupKind {
                group: String::new(),
                kind: "Pod".into(),
            },
            "p",
            vec![
                Cause::required("spec.containers", ""),
                Cause::required("metadata.name", ""),
            ],
        );
        assert_eq!(
            err.to_string(),
            "Pod \"p\" is invalid: [spec.containers: Required value, metadata.name: Required value]"
        );
        assert_eq!(err.status()["details"]["causes"][0]["field"], "spec.containers");
    }
}
