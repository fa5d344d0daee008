//! The provisioner's configuration, read from the environment once per cold start. A bad value
//! fails the cold start with a message naming the variable. What the environment leaves out
//! about the cluster (endpoint, CA, service CIDR, version) comes from `eks:DescribeCluster`.

use thiserror::Error;

pub const CLUSTER_NAME: &str = "NODEWRIGHT_CLUSTER_NAME";
pub const CLAIMS_TABLE: &str = "NODEWRIGHT_CLAIMS_TABLE";
pub const REGION: &str = "AWS_REGION";
pub const CLUSTER_ENDPOINT: &str = "NODEWRIGHT_CLUSTER_ENDPOINT";
pub const CLUSTER_CA: &str = "NODEWRIGHT_CLUSTER_CA";
pub const SERVICE_CIDR: &str = "NODEWRIGHT_SERVICE_CIDR";
pub const KUBERNETES_VERSION: &str = "NODEWRIGHT_KUBERNETES_VERSION";
pub const LEASE_TTL_SECONDS: &str = "NODEWRIGHT_LEASE_TTL_SECONDS";
/// The function's timeout as the template sets it: the lease must outlast it.
pub const FUNCTION_TIMEOUT_SECONDS: &str = "NODEWRIGHT_FUNCTION_TIMEOUT_SECONDS";
/// Registration timeout: a launched instance whose Node has not joined by then is terminated.
pub const REGISTRATION_TTL_SECONDS: &str = "NODEWRIGHT_REGISTRATION_TTL_SECONDS";
/// Instances without a claim terminated per pass, in percent of the fleet (100: no bound).
pub const MAX_ORPHANS_PERCENT: &str = "NODEWRIGHT_MAX_ORPHANS_PERCENT";

/// A configuration variable that is missing or wrong.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionerConfig {
    pub cluster_name: String,
    pub claims_table: String,
    pub region: String,
    pub cluster_endpoint: Option<String>,
    pub cluster_ca: Option<String>,
    pub service_cidr: Option<String>,
    pub kubernetes_version: Option<String>,
    pub lease_ttl_seconds: u64,
    pub function_timeout_seconds: u64,
    pub registration_ttl_seconds: u64,
    pub max_orphans_percent: u32,
}

/// Twice the function's 5-minute timeout: a pass never outlives its lease.
pub const DEFAULT_LEASE_TTL_SECONDS: u64 = 600;
/// The template's timeout for the provisioner.
pub const DEFAULT_FUNCTION_TIMEOUT_SECONDS: u64 = 300;
/// Karpenter's: 15 minutes.
pub const DEFAULT_REGISTRATION_TTL_SECONDS: u64 = 900;

impl ProvisionerConfig {
    /// Reads the configuration through `var` (`std::env::var` in Lambda).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let optional = |name: &str| var(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let required = |name: &'static str| {
            optional(name).ok_or(ConfigError {
                variable: name,
                reason: "is not set".to_string(),
            })
        };
        let cluster_name = required(CLUSTER_NAME)?;
        // EKS cluster names: 1-100 characters, alphanumerics, '-' and '_', starting alphanumeric.
        let valid_name = cluster_name.len() <= 100
            && cluster_name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && cluster_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_name {
            return Err(ConfigError {
                variable: CLUSTER_NAME,
                reason: format!("{cluster_name:?} is not an EKS cluster name"),
            });
        }
        let cluster_endpoint = optional(CLUSTER_ENDPOINT);
        if let Some(endpoint) = &cluster_endpoint {
            nodewright_kube::check_endpoint(endpoint).map_err(|reason| ConfigError {
                variable: CLUSTER_ENDPOINT,
                reason,
            })?;
        }
        let lease_ttl_seconds = match optional(LEASE_TTL_SECONDS) {
            None => DEFAULT_LEASE_TTL_SECONDS,
            Some(v) => v.parse::<u64>().ok().filter(|n| *n >= 60).ok_or(ConfigError {
                variable: LEASE_TTL_SECONDS,
                reason: format!("{v:?} is not a whole number of seconds, at least 60"),
            })?,
        };
        let seconds = |variable: &'static str, default: u64| match optional(variable) {
            None => Ok(default),
            Some(v) => v.parse::<u64>().ok().filter(|n| *n > 0).ok_or(ConfigError {
                variable,
                reason: format!("{v:?} is not a positive whole number of seconds"),
            }),
        };
        let function_timeout_seconds = seconds(FUNCTION_TIMEOUT_SECONDS, DEFAULT_FUNCTION_TIMEOUT_SECONDS)?;
        let registration_ttl_seconds = seconds(REGISTRATION_TTL_SECONDS, DEFAULT_REGISTRATION_TTL_SECONDS)?;
        let max_orphans_percent = match optional(MAX_ORPHANS_PERCENT) {
            None => nodewright_core::reconcile::DEFAULT_MAX_ORPHANS_PERCENT,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or(ConfigError {
                    variable: MAX_ORPHANS_PERCENT,
                    reason: format!("{v:?} is not a whole percentage from 1 to 100"),
                })?,
        };
        let as_ms = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
        nodewright_core::pass::check_lease_ttl(as_ms(lease_ttl_seconds), as_ms(function_timeout_seconds))
            .map_err(|e| ConfigError {
                variable: LEASE_TTL_SECONDS,
                reason: e.message,
            })?;
        Ok(ProvisionerConfig {
            cluster_name,
            claims_table: required(CLAIMS_TABLE)?,
            region: required(REGION)?,
            cluster_endpoint,
            cluster_ca: optional(CLUSTER_CA),
            service_cidr: optional(SERVICE_CIDR),
            kubernetes_version: optional(KUBERNETES_VERSION),
            lease_ttl_seconds,
            function_timeout_seconds,
            registration_ttl_seconds,
            max_orphans_percent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const BASE: [(&str, &str); 3] = [
        (CLUSTER_NAME, "demo"),
        (CLAIMS_TABLE, "nodewright-claims"),
        (REGION, "us-east-1"),
    ];

    #[test]
    fn the_minimal_environment_leaves_the_cluster_details_to_describe_cluster() {
        let config = ProvisionerConfig::from_env(env(&BASE)).expect("config");
        assert_eq!(config.cluster_name, "demo");
        assert_eq!(config.cluster_endpoint, None);
        assert_eq!(config.lease_ttl_seconds, DEFAULT_LEASE_TTL_SECONDS);
    }

    #[test]
    fn missing_and_malformed_variables_are_named() {
        let err = ProvisionerConfig::from_env(env(&BASE[..2])).expect_err("no region");
        assert_eq!(err.variable, REGION);
        let mut bad = BASE.to_vec();
        bad[0] = (CLUSTER_NAME, "my cluster");
        let err = ProvisionerConfig::from_env(env(&bad)).expect_err("bad name");
        assert_eq!(err.variable, CLUSTER_NAME);
        let mut bad = BASE.to_vec();
        bad.push((CLUSTER_ENDPOINT, "demo.eks.amazonaws.com"));
        let err = ProvisionerConfig::from_env(env(&bad)).expect_err("bad endpoint");
        assert_eq!(err.variable, CLUSTER_ENDPOINT);
        let mut bad = BASE.to_vec();
        bad.push((LEASE_TTL_SECONDS, "5"));
        let err = ProvisionerConfig::from_env(env(&bad)).expect_err("short lease");
        assert!(
            err.to_string().starts_with("NODEWRIGHT_LEASE_TTL_SECONDS:"),
            "{err}"
        );
    }

    #[test]
    fn a_lease_shorter_than_the_function_timeout_and_its_margin_is_refused() {
        let mut short = BASE.to_vec();
        short.push((LEASE_TTL_SECONDS, "300"));
        short.push((FUNCTION_TIMEOUT_SECONDS, "300"));
        let err = ProvisionerConfig::from_env(env(&short)).expect_err("lease within the timeout");
        assert_eq!(err.variable, LEASE_TTL_SECONDS);
        assert!(err.reason.contains("function timeout"), "{err}");
        let mut enough = BASE.to_vec();
        enough.push((LEASE_TTL_SECONDS, "330"));
        enough.push((FUNCTION_TIMEOUT_SECONDS, "300"));
        assert!(ProvisionerConfig::from_env(env(&enough)).is_ok());
    }
}
