//! The webhook's configuration, read from the environment once per cold start. A bad value
//! fails the cold start with a message naming the variable.

use std::time::Duration;

use thiserror::Error;

/// The shared secret the API server puts in the URL path (`https://<url>/<secret>`).
pub const SECRET: &str = "NODEWRIGHT_WEBHOOK_SECRET";
/// The provision queue (an SQS FIFO queue URL).
pub const QUEUE_URL: &str = "NODEWRIGHT_PROVISION_QUEUE_URL";
/// Deduplication window in milliseconds; the queue's delivery delay must be at least this.
pub const WINDOW_MS: &str = "NODEWRIGHT_BATCH_WINDOW_MS";
/// Largest body accepted, in bytes.
pub const MAX_BODY_BYTES: &str = "NODEWRIGHT_WEBHOOK_MAX_BODY_BYTES";

/// A configuration variable that is missing or wrong.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub secret: String,
    pub queue_url: String,
    pub window: Duration,
    pub max_body_bytes: usize,
}

/// An AdmissionReview carries the object and, on updates, the old object; Kubernetes caps an
/// object at about 1.5 MiB, so 3 MiB admits any honest review.
pub const DEFAULT_MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

impl WebhookConfig {
    /// Reads the configuration through `var` (`std::env::var` in Lambda).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| {
            var(name).filter(|v| !v.trim().is_empty()).ok_or(ConfigError {
                variable: name,
                reason: "is not set".to_string(),
            })
        };
        let secret = required(SECRET)?;
        if secret.len() < 16 {
            return Err(ConfigError {
                variable: SECRET,
                reason: "must be at least 16 characters".to_string(),
            });
        }
        if !secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ConfigError {
                variable: SECRET,
                reason: "must be URL-safe: letters, digits, '-' and '_'".to_string(),
            });
        }
        let queue_url = required(QUEUE_URL)?;
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match var(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(ConfigError {
                        variable: name,
                        reason: format!("{v:?} is not a positive whole number"),
                    }),
            }
        };
        let window_ms = number(WINDOW_MS, crate::DEFAULT_WINDOW.as_millis() as u64)?;
        let max_body_bytes = number(MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES as u64)?;
        Ok(WebhookConfig {
            secret,
            queue_url,
            window: Duration::from_millis(window_ms),
            max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
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

    #[test]
    fn a_complete_environment_reads_with_defaults() {
        let config = WebhookConfig::from_env(env(&[
            (SECRET, "s3cr3t-s3cr3t-s3cr3t"),
            (QUEUE_URL, "https://sqs.us-east-1.amazonaws.com/1/provision.fifo"),
        ]))
        .expect("config");
        assert_eq!(config.window, Duration::from_secs(2));
        assert_eq!(config.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    }

    #[test]
    fn a_missing_or_bad_variable_is_named() {
        let err = WebhookConfig::from_env(env(&[(SECRET, "s3cr3t-s3cr3t-s3cr3t")])).expect_err("no queue");
        assert_eq!(err.variable, QUEUE_URL);
        let err = WebhookConfig::from_env(env(&[(SECRET, "short"), (QUEUE_URL, "q")])).expect_err("short");
        assert_eq!(err.variable, SECRET);
        let err = WebhookConfig::from_env(env(&[
            (SECRET, "s3cr3t-s3cr3t-s3cr3t"),
            (QUEUE_URL, "q"),
            (WINDOW_MS, "soon"),
        ]))
        .expect_err("bad window");
        assert_eq!(err.variable, WINDOW_MS);
        assert!(err.to_string().contains("NODEWRIGHT_BATCH_WINDOW_MS"), "{err}");
    }
}
