//! CloudWatch's Embedded Metric Format (EMF): metrics as JSON documents on a function's
//! standard output, which CloudWatch Logs extracts into the namespace `nodewright`. Every
//! function builds its documents with [`document`] and prints them with [`MetricsOut`].

use std::io::Write;
use std::sync::{Arc, Mutex};

use nodewright_core::pod::Millis;
use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "nodewright";

/// A CloudWatch unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    /// For values CloudWatch has no unit for ($/h).
    None,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::None => "None",
        }
    }
}

/// One metric value of a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: Unit,
    pub value: Value,
}

impl Metric {
    pub fn count(name: &'static str, n: usize) -> Self {
        Metric {
            name,
            unit: Unit::Count,
            value: json!(n),
        }
    }

    pub fn millis(name: &'static str, ms: u64) -> Self {
        Metric {
            name,
            unit: Unit::Milliseconds,
            value: json!(ms),
        }
    }

    pub fn dollars_per_hour(name: &'static str, usd: f64) -> Self {
        // To a millionth of a dollar: prices have a few decimals, their sums carry float noise.
        let rounded = (usd * 1e6).round() / 1e6;
        Metric {
            name,
            unit: Unit::None,
            value: json!(rounded),
        }
    }
}

/// One EMF document: `metrics` under one set of `dimensions` (name, value), at `timestamp`
/// (epoch millis).
pub fn document(timestamp: Millis, dimensions: &[(&str, &str)], metrics: &[Metric]) -> Value {
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": metrics
                    .iter()
                    .map(|m| json!({"Name": m.name, "Unit": m.unit.as_str()}))
                    .collect::<Vec<_>>(),
            }],
        }),
    );
    for (key, value) in dimensions {
        root.insert((*key).to_string(), Value::String((*value).to_string()));
    }
    for m in metrics {
        root.insert(m.name.to_string(), m.value.clone());
    }
    Value::Object(root)
}

/// Where the documents go: stdout in Lambda (CloudWatch Logs reads it), a buffer in tests,
/// nowhere unless set.
#[derive(Clone, Default)]
pub struct MetricsOut(Option<Arc<Mutex<dyn Write + Send>>>);

impl std::fmt::Debug for MetricsOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "MetricsOut(writer)"
        } else {
            "MetricsOut(none)"
        })
    }
}

impl MetricsOut {
    /// Writes to `writer`.
    pub fn to(writer: impl Write + Send + 'static) -> Self {
        MetricsOut(Some(Arc::new(Mutex::new(writer))))
    }

    /// Writes to the process's stdout, as Lambda wants EMF.
    pub fn stdout() -> Self {
        Self::to(std::io::stdout())
    }

    /// Writes each document as one line. A write that fails is logged: metrics never fail an
    /// invocation.
    pub fn emit(&self, documents: &[Value]) {
        let Some(writer) = &self.0 else { return };
        if documents.is_empty() {
            return;
        }
        let mut text = String::new();
        for d in documents {
            text.push_str(&d.to_string());
            text.push('\n');
        }
        let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = w.write_all(text.as_bytes()).and_then(|()| w.flush()) {
            tracing::warn!(error = %e, "could not write the metrics");
        }
    }
}
