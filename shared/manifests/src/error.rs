//! The crate's one error type.
//!
//! Messages follow the `source()` chain convention: each variant says what it adds (the file,
//! the object, the field) and leaves the cause to its source, so `{:#}` in the CLI reads
//! `file document 2: Pod default/web: spec.containers[0].resources.requests.memory: invalid
//! quantity "1GB": …` without repeating itself.

use std::path::PathBuf;

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    /// A file or directory could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A document is not well-formed YAML (or JSON).
    #[error("not valid YAML")]
    Yaml {
        #[source]
        source: crate::yaml::YamlError,
    },

    /// An object does not match its Kubernetes schema (a wrong type, a missing required field).
    #[error("{object} does not match the Kubernetes schema")]
    Schema {
        object: String,
        #[source]
        source: serde_json::Error,
    },

    /// A field the Kubernetes schema does not define (kubectl's strict field validation).
    #[error("{object}: unknown field {field:?}")]
    UnknownField { object: String, field: String },

    /// A field holds a value the model cannot take.
    #[error("{object}: {field}: {reason}")]
    Invalid {
        object: String,
        field: String,
        reason: String,
    },

    /// A field the core rejects (a quantity, a requirement); the source says why.
    #[error("{object}: {field}")]
    Value {
        object: String,
        field: String,
        #[source]
        source: nodewright_core::Error,
    },

    /// A NodePool or EC2NodeClass the core refuses; it names the object and the field.
    #[error(transparent)]
    Config(#[from] nodewright_core::api::ConfigError),

    /// Two documents define the same object.
    #[error("{object} is defined more than once")]
    Duplicate { object: String },

    /// A pod's `spec.nodeName` names a node no manifest defines.
    #[error("{pod} is bound to node {node:?}, which no manifest defines")]
    UnknownNode { pod: String, node: String },

    /// A NodePool that cannot be planned with (its `nodeClassRef` names another kind).
    #[error(transparent)]
    UnusablePool(nodewright_core::assemble::UnusablePool),

    /// A NodePool's `nodeClassRef` names an EC2NodeClass no manifest defines.
    #[error("NodePool {nodepool} refers to EC2NodeClass {nodeclass:?}, which no manifest defines")]
    MissingNodeClass { nodepool: String, nodeclass: String },

    /// The embedded catalog could not be sized for a node class's settings.
    #[error("cannot build the instance catalog for EC2NodeClass {nodeclass}")]
    Catalog {
        nodeclass: String,
        #[source]
        source: nodewright_core::Error,
    },

    /// Where in the input an error happened; `document` counts from 1.
    #[error("{} document {document}", file.display())]
    Document {
        file: PathBuf,
        document: usize,
        #[source]
        source: Box<Error>,
    },

    /// An item of a `kind: List` document; `index` counts from 0, as in `items[0]`.
    #[error("items[{index}]")]
    ListItem {
        index: usize,
        #[source]
        source: Box<Error>,
    },
}

/// Names the object being converted and where the part being read sits, for error messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At<'a> {
    pub object: &'a str,
    /// Path of the part's parent: `""` for a Pod, `"spec.template."` for a workload's pod spec.
    pub prefix: &'a str,
}

impl At<'_> {
    pub fn invalid(&self, field: &str, reason: impl Into<String>) -> Error {
        Error::invalid(self.object, format!("{}{field}", self.prefix), reason)
    }

    pub fn value(&self, field: &str, source: nodewright_core::Error) -> Error {
        Error::value(self.object, format!("{}{field}", self.prefix), source)
    }
}

impl Error {
    pub(crate) fn invalid(object: &str, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            object: object.to_string(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn value(object: &str, field: impl Into<String>, source: nodewright_core::Error) -> Self {
        Error::Value {
            object: object.to_string(),
            field: field.into(),
            source,
        }
    }
}
