//! The adapter's configuration: what it must know about the cluster, passed in by the caller
//! (the Lambda handlers read it from their environment once per cold start).

use std::net::IpAddr;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use nodewright_core::ports::{ErrorKind, PortError, PortResult};

/// What the EC2 adapter needs to know about the cluster it launches nodes for.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsConfig {
    pub cluster_name: String,
    /// The API server URL (`https://….eks.amazonaws.com`).
    pub cluster_endpoint: String,
    /// The cluster's CA bundle, base64-encoded PEM, as `DescribeCluster` returns it.
    pub cluster_ca_bundle: String,
    /// The Kubernetes service CIDR (`10.100.0.0/16`); nodeadm requires it.
    pub service_cidr: String,
    /// The cluster DNS service IP; the `.10` address of the service CIDR when `None`, as EKS
    /// assigns it.
    pub cluster_dns_ip: Option<String>,
    /// `1.32`: picks the AMIs that aliases resolve to.
    pub kubernetes_version: String,
    pub region: String,
    pub retry: RetryPolicy,
}

impl AwsConfig {
    /// The cluster DNS IP: the configured one, or the `.10` address (`::a` for IPv6) of the
    /// service CIDR.
    pub fn cluster_dns_ip(&self) -> PortResult<String> {
        if let Some(ip) = &self.cluster_dns_ip {
            return Ok(ip.clone());
        }
        let invalid = || {
            PortError::new(
                ErrorKind::Invalid,
                format!("service CIDR {:?} is not an IP network", self.service_cidr),
            )
        };
        let (network, _) = self.service_cidr.split_once('/').ok_or_else(invalid)?;
        let ip: IpAddr = network.parse().map_err(|_| invalid())?;
        Ok(match ip {
            IpAddr::V4(v4) => IpAddr::from(u32::from(v4).wrapping_add(10).to_be_bytes()).to_string(),
            IpAddr::V6(v6) => IpAddr::from(u128::from(v6).wrapping_add(10).to_be_bytes()).to_string(),
        })
    }
}

/// How the SDK retries throttled and transient failures (see [`crate::errors`]): its standard
/// strategy, exponential backoff with full jitter, within these bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How long one attempt may take before it is abandoned and retried: an endpoint that
    /// accepts a request and never answers must not stall a round until Lambda kills it.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    /// Five attempts, backoff from 1 s up to 20 s: enough to ride out EC2's request-rate
    /// limiting (its token buckets refill every second) well inside a Lambda invocation.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(20),
            attempt_timeout: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    pub fn sdk(&self) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(self.max_attempts)
            .with_initial_backoff(self.initial_backoff)
            .with_max_backoff(self.max_backoff)
    }

    /// Connecting takes milliseconds inside a region; the attempt bound covers the rest.
    pub fn timeouts(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3).min(self.attempt_timeout))
            .operation_attempt_timeout(self.attempt_timeout)
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(service_cidr: &str) -> AwsConfig {
        AwsConfig {
            cluster_name: "c".into(),
            cluster_endpoint: "https://example.com".into(),
            cluster_ca_bundle: String::new(),
            service_cidr: service_cidr.into(),
            cluster_dns_ip: None,
            kubernetes_version: "1.32".into(),
            region: "us-east-1".into(),
            retry: RetryPolicy::default(),
        }
    }

    #[test]
    fn cluster_dns_ip_is_the_tenth_address_of_the_service_cidr() {
        assert_eq!(
            config("10.100.0.0/16").cluster_dns_ip().expect("v4"),
            "10.100.0.10"
        );
        assert_eq!(
            config("172.20.0.0/16").cluster_dns_ip().expect("v4"),
            "172.20.0.10"
        );
        assert_eq!(
            config("fd00:1234::/108").cluster_dns_ip().expect("v6"),
            "fd00:1234::a"
        );
    }

    #[test]
    fn a_configured_cluster_dns_ip_wins() {
        let mut c = config("10.100.0.0/16");
        c.cluster_dns_ip = Some("169.254.20.10".into());
        assert_eq!(c.cluster_dns_ip().expect("set"), "169.254.20.10");
    }

    #[test]
    fn a_malformed_service_cidr_is_invalid() {
        let err = config("not-a-cidr").cluster_dns_ip().expect_err("malformed");
        assert_eq!(err.kind, ErrorKind::Invalid);
    }
}
