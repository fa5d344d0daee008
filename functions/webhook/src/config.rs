//! The webhook's configuration, read from the environment once per cold start. A bad value
//! fails the cold start with a message naming the variable.

use std::time::Duration;

use thiserror::Error;

/// The shared secret the API server puts in the URL path (`https://<url>/<secret>`), given
/// directly (local runs and tests).
pub const SECRET: &str = "NODEWRIGHT_WEBHOOK_SECRET";
/// The Secrets Manager secret (name or ARN) holding it, as the stack deploys it: read at cold
/// start, its current and previous values both accepted so that it can be rotated.
pub const SECRET_ID: &str = "NODEWRIGHT_WEBHOOK_SECRET_ID";
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

/// Where the shared secret comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretConfig {
    Value(String),
    SecretsManager(String),
}

impl std::fmt::Debug for SecretConfig {
    // The value never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretConfig::Value(_) => f.write_str("Value(..)"),
            SecretConfig::SecretsManager(id) => f.debug_tuple("SecretsManager").field(id).finish(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub secret: SecretConfig,
    pub queue_url: String,
    pub window: Duration,
    pub max_body_bytes: usize,
}

/// Why a secret value cannot be used, if it cannot: it travels in a URL path, and a short one
/// could be guessed.
pub fn check_secret(value: &str) -> Result<(), String> {
    if value.len() < 16 {
        return Err("must be at least 16 characters".to_string());
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err("must be URL-safe: letters, digits, '-' and '_'".to_string());
    }
    Ok(())
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
        let secret = match (
            var(SECRET).filter(|v| !v.trim().is_empty()),
            var(SECRET_ID).filter(|v| !v.trim().is_empty()),
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError {
                    variable: SECRET,
                    reason: format!("set it or {SECRET_ID}, not both"),
                });
            }
            (Some(value), None) => {
                check_secret(&value).map_err(|reason| ConfigError {
                    variable: SECRET,
                    reason,
                })?;
                SecretConfig::Value(value)
            }
            (None, Some(id)) => SecretConfig::SecretsManager(id.trim().to_string()),
            (None, None) => {
                return Err(ConfigError {
                    variable: SECRET_ID,
                    reason: format!("is not set (nor is {SECRET})"),
                });
            }
        };
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
        assert_eq!(config.secret, SecretConfig::Value("s3cr3t-s3cr3t-s3cr3t".into()));
        assert_eq!(config.window, Duration::from_secs(2));
        assert_eq!(config.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    }

    #[test]
    fn the_secret_comes_from_secrets_manager_or_the_environment_never_both() {
        let config = WebhookConfig::from_env(env(&[
            (
                SECRET_ID,
                "arn:aws:secretsmanager:us-east-1:1:secret:nodewright-webhook",
            ),
            (QUEUE_URL, "q"),
        ]))
        .expect("config");
        assert_eq!(
            config.secret,
            SecretConfig::SecretsManager(
                "arn:aws:secretsmanager:us-east-1:1:secret:nodewright-webhook".into()
            )
        );
        assert!(!format!("{:?}", SecretConfig::Value("s3cr3t-s3cr3t-s3cr3t".into())).contains("s3cr3t"));
        let err = WebhookConfig::from_env(env(&[
            (SECRET, "s3cr3t-s3cr3t-s3cr3t"),
            (SECRET_ID, "nodewright-webhook"),
            (QUEUE_URL, "q"),
        ]))
        .expect_err("both");
        assert_eq!(err.variable, SECRET);
        let err = WebhookConfig::from_env(env(&[(QUEUE_URL, "q")])).expect_err("neither");
        assert_eq!(err.variable, SECRET_ID);
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
