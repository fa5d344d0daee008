//! The simulator's one error type.

use nodewright_core::ports::PortError;
use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    /// The scenario file cannot be read.
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },

    /// The scenario file is not valid YAML or has a field of the wrong shape or name.
    #[error("{file}: {source}")]
    ScenarioSyntax {
        file: String,
        #[source]
        source: nodewright_manifests::yaml::YamlError,
    },

    /// A scenario field has a value the simulator cannot use.
    #[error("{file}: {field}: {reason}")]
    Scenario {
        file: String,
        field: String,
        reason: String,
    },

    /// A file named by `include:` cannot be read.
    #[error("{file}: cannot read {path}: {source}")]
    Include {
        file: String,
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A NodePool or EC2NodeClass in the scenario fails the core's strict parsing.
    #[error("{file}: {source}")]
    Config {
        file: String,
        #[source]
        source: nodewright_core::api::ConfigError,
    },

    /// No baseline can be made for a simulation report: the instance type is unknown, or some
    /// pod fits on none of the candidates.
    #[error("baseline: {reason}")]
    Baseline { reason: String },

    /// One of the simulated services failed (only when an error was injected or a rule broken).
    #[error("{what}: {source}")]
    Port {
        what: String,
        #[source]
        source: PortError,
    },
}

impl Error {
    pub(crate) fn scenario(file: &str, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Scenario {
            file: file.to_string(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn baseline(reason: impl Into<String>) -> Self {
        Error::Baseline {
            reason: reason.into(),
        }
    }

    pub(crate) fn port(what: impl Into<String>, source: PortError) -> Self {
        Error::Port {
            what: what.into(),
            source,
        }
    }
}
