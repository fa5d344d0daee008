//! CloudWatch metrics in the Embedded Metric Format (EMF), derived from the reports the core
//! returns.
//!
//! Each function prints, after each invocation, one JSON document per line on stdout; CloudWatch
//! Logs extracts the metrics from the `_aws` member (namespace `nodewright`). A document holds
//! the metrics that share one set of dimension values, so a count by NodePool and capacity type
//! is one document per pair. Counts are only printed when they are not zero, except the
//! round's pending pods, which a round always reports. Nothing here reads a clock or does I/O
//! but `MetricsOut::emit`: the documents are built from a report and a timestamp.

use std::collections::BTreeMap;

use nodewright_core::disruption::Reason;
use nodewright_core::interruption::Kind;
use nodewright_core::lifecycle::{ClaimTerminated, NODE_DELETED, REGISTRATION_TIMEOUT};
use nodewright_core::pass::{PassReport, SweepPassReport};
use nodewright_core::pod::Millis;
use nodewright_core::ports::ErrorKind;
use nodewright_core::provisioning::{LaunchSummary, RoundReport};
use serde_json::Value;

pub use nodewright_aws::emf::{Metric, MetricsOut, NAMESPACE, Unit, document};

use crate::Invocation;
use crate::interruption::{Batch, NoticeMessage};

/// Pods pending when a provisioning round listed them.
pub const PENDING_PODS: &str = "PendingPods";
/// USD per hour of the live claims' instances after a round: a gauge.
pub const FLEET_COST_PER_HOUR: &str = "FleetCostPerHour";
/// Instances launched (by a round or for a sweep's replacements); dimensions NodePool,
/// CapacityType.
pub const NODES_LAUNCHED: &str = "NodesLaunched";
/// Nodes whose instance was terminated and claim closed; dimension Reason.
pub const NODES_TERMINATED: &str = "NodesTerminated";
/// Launches that failed; dimension ErrorKind.
pub const LAUNCH_ERRORS: &str = "LaunchErrors";
/// One provisioner pass (reconcile, lifecycle, provisioning round), in milliseconds.
pub const PASS_DURATION: &str = "PassDuration";
/// One disruption sweep, in milliseconds.
pub const SWEEP_DURATION: &str = "SweepDuration";
/// Interruption queue messages; dimension Kind.
pub const INTERRUPTION_MESSAGES: &str = "InterruptionMessages";

/// One document per dimension value with a non-zero count of `name`.
fn counts_by(
    timestamp: Millis,
    name: &'static str,
    dimension: &str,
    counts: BTreeMap<&str, usize>,
) -> Vec<Value> {
    counts
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(value, n)| document(timestamp, &[(dimension, value)], &[Metric::count(name, n)]))
        .collect()
}

/// The metrics of one provisioner pass: none when another pass held the lease.
pub fn pass(report: &PassReport, timestamp: Millis) -> Vec<Value> {
    if !report.ran {
        return Vec::new();
    }
    let round = &report.round;
    let mut out = vec![document(
        timestamp,
        &[],
        &[
            Metric::count(PENDING_PODS, round.pods_pending),
            Metric::dollars_per_hour(FLEET_COST_PER_HOUR, round.fleet_cost_per_hour),
        ],
    )];
    out.extend(launched(round.launched.iter(), timestamp));
    out.extend(terminated(report, timestamp));
    out.extend(launch_errors(round, timestamp));
    out
}

/// `NodesLaunched` by NodePool and capacity type.
pub fn launched<'a>(launches: impl Iterator<Item = &'a LaunchSummary>, timestamp: Millis) -> Vec<Value> {
    let mut counts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for l in launches {
        *counts
            .entry((l.nodepool.as_str(), l.capacity_type.as_str()))
            .or_default() += 1;
    }
    counts
        .into_iter()
        .map(|((pool, capacity), n)| {
            document(
                timestamp,
                &[("NodePool", pool), ("CapacityType", capacity)],
                &[Metric::count(NODES_LAUNCHED, n)],
            )
        })
        .collect()
}

/// `NodesTerminated` by reason: what the lifecycle closed (registration timeouts and the end of
/// graceful terminations, by the claim's reason) and what reconciliation did (instances no
/// claim accounts for, terminated; claims whose instance is gone or never came, closed).
fn terminated(report: &PassReport, timestamp: Millis) -> Vec<Value> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let l = &report.lifecycle;
    *counts.entry(REGISTRATION_TIMEOUT).or_default() += l.registration_timeouts.len();
    for ClaimTerminated { reason, .. } in &l.terminated {
        *counts.entry(termination_reason(reason)).or_default() += 1;
    }
    *counts.entry("reconciled orphan").or_default() += report.reconciled.terminated.len();
    *counts.entry("reconciled gone").or_default() += report.reconciled.closed.len();
    counts_by(timestamp, NODES_TERMINATED, "Reason", counts)
}

/// A claim's termination reason as a dimension value: the core's own reasons as they are,
/// anything else `other` (so the dimension cannot grow without bound).
pub fn termination_reason(reason: &str) -> &'static str {
    const DISRUPTIONS: [Reason; 4] = [
        Reason::Empty,
        Reason::Underutilized,
        Reason::Drifted,
        Reason::Expired,
    ];
    if let Some(r) = DISRUPTIONS.iter().find(|r| r.as_str() == reason) {
        return r.as_str();
    }
    match reason {
        REGISTRATION_TIMEOUT => REGISTRATION_TIMEOUT,
        NODE_DELETED => NODE_DELETED,
        // `nodewright_core::interruption`'s reason for interrupted claims.
        "interrupted" => "interrupted",
        _ => "other",
    }
}

/// `LaunchErrors` by kind: launches EC2 had no capacity for, and the other failures.
fn launch_errors(round: &RoundReport, timestamp: Millis) -> Vec<Value> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    *counts
        .entry(error_kind(ErrorKind::InsufficientCapacity))
        .or_default() += round.out_of_capacity.len();
    for kind in &round.failure_kinds {
        *counts.entry(error_kind(*kind)).or_default() += 1;
    }
    counts_by(timestamp, LAUNCH_ERRORS, "ErrorKind", counts)
}

/// An error kind as a dimension value.
pub fn error_kind(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "not found",
        ErrorKind::Conflict => "conflict",
        ErrorKind::InsufficientCapacity => "insufficient capacity",
        ErrorKind::Throttled => "throttled",
        ErrorKind::Forbidden => "forbidden",
        ErrorKind::Unauthorized => "unauthorized",
        ErrorKind::Invalid => "invalid",
        ErrorKind::Unavailable => "unavailable",
    }
}

/// A duration metric without dimensions.
pub fn duration(name: &'static str, ms: u64, timestamp: Millis) -> Value {
    document(timestamp, &[], &[Metric::millis(name, ms)])
}

/// The provisioner's invocation: its pass's metrics and `PassDuration` (also for a pass that
/// failed; nothing for one that found the lease held).
pub fn invocation(invocation: &Invocation, timestamp: Millis) -> Vec<Value> {
    let mut out = match &invocation.pass {
        Ok(report) if !report.ran => return Vec::new(),
        Ok(report) => pass(report, timestamp),
        Err(_) => Vec::new(),
    };
    let ms = u64::try_from(invocation.duration_ms).unwrap_or(u64::MAX);
    out.push(duration(PASS_DURATION, ms, timestamp));
    out
}

/// The sweeper's invocation: the replacements it launched and `SweepDuration` (`None` when the
/// sweep failed); nothing when another pass held the lease.
pub fn sweep(report: Option<&SweepPassReport>, duration_ms: u64, timestamp: Millis) -> Vec<Value> {
    let mut out = match report {
        Some(r) if !r.ran => return Vec::new(),
        Some(r) => launched(r.sweep.replacements.iter().map(|r| &r.launch), timestamp),
        None => Vec::new(),
    };
    out.push(duration(SWEEP_DURATION, duration_ms, timestamp));
    out
}

/// An interruption message's kind as a dimension value.
pub fn message_kind(kind: Kind) -> &'static str {
    match kind {
        Kind::SpotInterruption => "spot",
        Kind::Rebalance => "rebalance",
        Kind::ScheduledChange => "scheduled",
        Kind::Stopping | Kind::Stopped | Kind::ShuttingDown | Kind::Terminated => "state change",
    }
}

/// The interruption function's batch: `InterruptionMessages` by kind (`no action` for a known
/// event that asks for nothing, `unreadable` for a body that could not be read), and the
/// metrics of the pass it ran, if any.
pub fn interruption(batch: &Batch, timestamp: Millis) -> Vec<Value> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for NoticeMessage { notice, .. } in &batch.notices {
        *counts.entry(message_kind(notice.kind)).or_default() += 1;
    }
    *counts.entry("unreadable").or_default() += batch.unreadable.len();
    *counts.entry("no action").or_default() += batch.ignored.len().saturating_sub(batch.unreadable.len());
    let mut out = counts_by(timestamp, INTERRUPTION_MESSAGES, "Kind", counts);
    if let Ok(report) = &batch.outcome
        && let Some(p) = &report.pass
    {
        out.extend(pass(p, timestamp));
    }
    out
}

#[cfg(test)]
mod tests {
    use nodewright_core::catalog::CapacityType;
    use nodewright_core::disruption::LaunchedReplacement;
    use nodewright_core::interruption::Notice;
    use nodewright_core::lifecycle::LifecycleReport;
    use nodewright_core::pass::InterruptionPassReport;
    use nodewright_core::ports::{OfferingKey, PortError};
    use nodewright_core::provisioning::OutOfCapacity;
    use nodewright_core::reconcile::ReconcileReport;
    use serde_json::json;

    use super::*;
    use crate::interruption::IgnoredMessage;

    const NOW: Millis = 1_795_342_530_000;

    fn launch(pool: &str, capacity: CapacityType, price: f64) -> LaunchSummary {
        LaunchSummary {
            claim_id: format!("{pool}-abcde"),
            nodepool: pool.into(),
            instance_id: "i-0123456789abcdef0".into(),
            instance_type: "m6i.large".into(),
            zone: "us-east-1a".into(),
            capacity_type: capacity,
            price,
            pods: 3,
        }
    }

    fn pass_report() -> PassReport {
        PassReport {
            ran: true,
            round: RoundReport {
                ran: true,
                pods_pending: 12,
                launched: vec![
                    launch("default", CapacityType::OnDemand, 0.096),
                    launch("default", CapacityType::OnDemand, 0.096),
                    launch("default", CapacityType::Spot, 0.0351),
                    launch("gpu", CapacityType::OnDemand, 1.006),
                ],
                cost_per_hour: 1.2331,
                fleet_cost_per_hour: 2.4662,
                ..RoundReport::default()
            },
            ..PassReport::default()
        }
    }

    fn find<'a>(docs: &'a [Value], metric: &str, dimensions: &[(&str, &str)]) -> Vec<&'a Value> {
        docs.iter()
            .filter(|d| d.get(metric).is_some())
            .filter(|d| dimensions.iter().all(|(k, v)| d[*k] == *v))
            .collect()
    }

    #[test]
    fn a_document_carries_the_namespace_the_dimension_names_units_and_the_values_at_its_root() {
        let doc = document(
            NOW,
            &[("NodePool", "default"), ("CapacityType", "spot")],
            &[Metric::count(NODES_LAUNCHED, 2)],
        );
        assert_eq!(
            doc,
            json!({
                "_aws": {
                    "Timestamp": NOW,
                    "CloudWatchMetrics": [{
                        "Namespace": "nodewright",
                        "Dimensions": [["NodePool", "CapacityType"]],
                        "Metrics": [{"Name": "NodesLaunched", "Unit": "Count"}],
                    }],
                },
                "NodePool": "default",
                "CapacityType": "spot",
                "NodesLaunched": 2,
            })
        );
    }

    #[test]
    fn a_pass_reports_pending_pods_and_the_fleet_cost_without_dimensions() {
        let docs = pass(&pass_report(), NOW);
        assert_eq!(
            docs[0],
            json!({
                "_aws": {
                    "Timestamp": NOW,
                    "CloudWatchMetrics": [{
                        "Namespace": "nodewright",
                        "Dimensions": [[]],
                        "Metrics": [
                            {"Name": "PendingPods", "Unit": "Count"},
                            {"Name": "FleetCostPerHour", "Unit": "None"},
                        ],
                    }],
                },
                "PendingPods": 12,
                "FleetCostPerHour": 2.4662,
            })
        );
    }

    #[test]
    fn launches_are_counted_by_nodepool_and_capacity_type() {
        let docs = pass(&pass_report(), NOW);
        let launched: Vec<(Value, Value, Value)> = find(&docs, NODES_LAUNCHED, &[])
            .into_iter()
            .map(|d| {
                assert_eq!(
                    d["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
                    json!([["NodePool", "CapacityType"]])
                );
                assert_eq!(
                    d["_aws"]["CloudWatchMetrics"][0]["Metrics"],
                    json!([{"Name": "NodesLaunched", "Unit": "Count"}])
                );
                (
                    d["NodePool"].clone(),
                    d["CapacityType"].clone(),
                    d[NODES_LAUNCHED].clone(),
                )
            })
            .collect();
        assert_eq!(
            launched,
            vec![
                (json!("default"), json!("on-demand"), json!(2)),
                (json!("default"), json!("spot"), json!(1)),
                (json!("gpu"), json!("on-demand"), json!(1)),
            ]
        );
    }

    #[test]
    fn terminated_nodes_are_counted_by_reason_from_the_lifecycle_and_reconciliation() {
        let report = PassReport {
            ran: true,
            lifecycle: LifecycleReport {
                registration_timeouts: vec!["default-aaaaa".into()],
                terminated: [
                    ("default-bbbbb", Some("i-1"), "node deleted"),
                    ("default-ccccc", Some("i-2"), "underutilized"),
                    ("default-ddddd", Some("i-3"), "underutilized"),
                    ("default-eeeee", Some("i-4"), "interrupted"),
                    ("default-fffff", None, "drifted"),
                    ("default-ggggg", Some("i-5"), "some future reason"),
                ]
                .into_iter()
                .map(|(claim, instance, reason)| ClaimTerminated {
                    claim: claim.into(),
                    instance: instance.map(Into::into),
                    reason: reason.into(),
                })
                .collect(),
                ..LifecycleReport::default()
            },
            reconciled: ReconcileReport {
                terminated: vec!["i-6".into(), "i-7".into()],
                closed: vec!["default-hhhhh".into()],
                ..ReconcileReport::default()
            },
            ..PassReport::default()
        };
        let docs = pass(&report, NOW);
        let by_reason: Vec<(Value, Value)> = find(&docs, NODES_TERMINATED, &[])
            .into_iter()
            .map(|d| {
                assert_eq!(
                    d["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
                    json!([["Reason"]])
                );
                assert_eq!(
                    d["_aws"]["CloudWatchMetrics"][0]["Metrics"],
                    json!([{"Name": "NodesTerminated", "Unit": "Count"}])
                );
                (d["Reason"].clone(), d[NODES_TERMINATED].clone())
            })
            .collect();
        assert_eq!(
            by_reason,
            vec![
                (json!("drifted"), json!(1)),
                (json!("interrupted"), json!(1)),
                (json!("node deleted"), json!(1)),
                (json!("other"), json!(1)),
                (json!("reconciled gone"), json!(1)),
                (json!("reconciled orphan"), json!(2)),
                (json!("registration timeout"), json!(1)),
                (json!("underutilized"), json!(2)),
            ]
        );
    }

    #[test]
    fn launch_errors_are_counted_by_kind_with_out_of_capacity_as_insufficient_capacity() {
        let mut report = pass_report();
        report.round.out_of_capacity = vec![OutOfCapacity {
            nodepool: "default".into(),
            pods: 4,
            offerings: vec![OfferingKey {
                instance_type: "m6i.large".into(),
                zone: "us-east-1a".into(),
                capacity_type: CapacityType::Spot,
            }],
        }];
        report.round.failures = vec![
            "launch for pool default: Throttled: Request limit exceeded".into(),
            "launch for pool default: Throttled: Request limit exceeded".into(),
            "launch for pool gpu: Invalid: InvalidParameterValue".into(),
        ];
        report.round.failure_kinds = vec![ErrorKind::Throttled, ErrorKind::Throttled, ErrorKind::Invalid];
        let docs = pass(&report, NOW);
        let errors: Vec<&Value> = find(&docs, LAUNCH_ERRORS, &[]);
        assert_eq!(errors.len(), 3);
        assert_eq!(
            *errors[0],
            json!({
                "_aws": {
                    "Timestamp": NOW,
                    "CloudWatchMetrics": [{
                        "Namespace": "nodewright",
                        "Dimensions": [["ErrorKind"]],
                        "Metrics": [{"Name": "LaunchErrors", "Unit": "Count"}],
                    }],
                },
                "ErrorKind": "insufficient capacity",
                "LaunchErrors": 1,
            })
        );
        assert_eq!(errors[1]["ErrorKind"], "invalid");
        assert_eq!(errors[1][LAUNCH_ERRORS], 1);
        assert_eq!(errors[2]["ErrorKind"], "throttled");
        assert_eq!(errors[2][LAUNCH_ERRORS], 2);
    }

    #[test]
    fn a_quiet_pass_prints_only_its_pending_pods_and_fleet_cost() {
        let report = PassReport {
            ran: true,
            round: RoundReport {
                ran: true,
                fleet_cost_per_hour: 0.192,
                ..RoundReport::default()
            },
            ..PassReport::default()
        };
        let docs = pass(&report, NOW);
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0][PENDING_PODS], 0);
        assert_eq!(docs[0][FLEET_COST_PER_HOUR], 0.192);
    }

    #[test]
    fn a_pass_that_found_the_lease_held_prints_nothing() {
        let report = PassReport {
            lease_conflict: Some("provisioner/other until 1795342590000".into()),
            ..PassReport::default()
        };
        assert!(pass(&report, NOW).is_empty());
        let invocation = Invocation {
            trigger: "schedule",
            messages: Vec::new(),
            unreadable: Vec::new(),
            pass: Ok(report),
            duration_ms: 12,
        };
        assert!(super::invocation(&invocation, NOW).is_empty());
    }

    #[test]
    fn an_invocation_adds_its_pass_duration_in_milliseconds_even_when_the_pass_failed() {
        let ok = Invocation {
            trigger: "queue",
            messages: vec!["m-1".into()],
            unreadable: Vec::new(),
            pass: Ok(pass_report()),
            duration_ms: 1_234,
        };
        let docs = super::invocation(&ok, NOW);
        let last = docs.last().expect("a duration");
        assert_eq!(
            *last,
            json!({
                "_aws": {
                    "Timestamp": NOW,
                    "CloudWatchMetrics": [{
                        "Namespace": "nodewright",
                        "Dimensions": [[]],
                        "Metrics": [{"Name": "PassDuration", "Unit": "Milliseconds"}],
                    }],
                },
                "PassDuration": 1_234,
            })
        );
        let failed = Invocation {
            pass: Err(PortError::new(ErrorKind::Unavailable, "API server unreachable")),
            duration_ms: 5_000,
            ..ok
        };
        let docs = super::invocation(&failed, NOW);
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0][PASS_DURATION], 5_000);
    }

    #[test]
    fn a_sweep_reports_its_replacements_as_launches_and_its_duration() {
        let mut report = SweepPassReport {
            ran: true,
            ..SweepPassReport::default()
        };
        report.sweep.replacements = vec![LaunchedReplacement {
            decision: 0,
            launch: launch("default", CapacityType::Spot, 0.0351),
        }];
        let docs = sweep(Some(&report), 850, NOW);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["NodePool"], "default");
        assert_eq!(docs[0]["CapacityType"], "spot");
        assert_eq!(docs[0][NODES_LAUNCHED], 1);
        assert_eq!(
            docs[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"],
            json!([{"Name": "SweepDuration", "Unit": "Milliseconds"}])
        );
        assert_eq!(docs[1][SWEEP_DURATION], 850);
        assert_eq!(sweep(None, 90, NOW), vec![duration(SWEEP_DURATION, 90, NOW)]);
        let held = SweepPassReport {
            lease_conflict: Some("provisioner/x".into()),
            ..SweepPassReport::default()
        };
        assert!(sweep(Some(&held), 3, NOW).is_empty());
    }

    #[test]
    fn interruption_messages_are_counted_by_kind_with_state_changes_together() {
        let notice = |id: &str, kind| NoticeMessage {
            message_id: format!("m-{id}"),
            notice: Notice {
                id: id.into(),
                kind,
                instance_ids: vec!["i-0b662ef9931388ba0".into()],
            },
        };
        let batch = Batch {
            notices: vec![
                notice("1", Kind::SpotInterruption),
                notice("2", Kind::SpotInterruption),
                notice("3", Kind::Rebalance),
                notice("4", Kind::ScheduledChange),
                notice("5", Kind::Stopping),
                notice("6", Kind::Terminated),
            ],
            ignored: vec![
                IgnoredMessage {
                    message_id: "m-7".into(),
                    why: "nothing to do".into(),
                },
                IgnoredMessage {
                    message_id: "m-8".into(),
                    why: "expected value at line 1 column 1".into(),
                },
            ],
            unreadable: vec!["m-8".into()],
            outcome: Ok(InterruptionPassReport::default()),
        };
        let docs = interruption(&batch, NOW);
        let kinds: Vec<(Value, Value)> = docs
            .iter()
            .map(|d| {
                assert_eq!(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["Kind"]]));
                assert_eq!(
                    d["_aws"]["CloudWatchMetrics"][0]["Metrics"],
                    json!([{"Name": "InterruptionMessages", "Unit": "Count"}])
                );
                (d["Kind"].clone(), d[INTERRUPTION_MESSAGES].clone())
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                (json!("no action"), json!(1)),
                (json!("rebalance"), json!(1)),
                (json!("scheduled"), json!(1)),
                (json!("spot"), json!(2)),
                (json!("state change"), json!(2)),
                (json!("unreadable"), json!(1)),
            ]
        );
    }

    #[test]
    fn an_interruption_batch_that_ran_a_pass_adds_the_pass_metrics() {
        let batch = Batch {
            notices: Vec::new(),
            ignored: Vec::new(),
            unreadable: Vec::new(),
            outcome: Ok(InterruptionPassReport {
                pass: Some(pass_report()),
                ..InterruptionPassReport::default()
            }),
        };
        let docs = interruption(&batch, NOW);
        assert_eq!(docs, pass(&pass_report(), NOW));
    }

    #[test]
    fn the_fleet_cost_is_rounded_to_a_millionth_of_a_dollar() {
        let m = Metric::dollars_per_hour(FLEET_COST_PER_HOUR, 0.1 + 0.2);
        assert_eq!(m.value, json!(0.3));
    }

    #[test]
    fn every_document_is_written_as_one_line() {
        use std::io::Write;
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap_or_else(|p| p.into_inner()).write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Shared::default();
        let out = MetricsOut::to(buffer.clone());
        let docs = pass(&pass_report(), NOW);
        out.emit(&docs);
        MetricsOut::default().emit(&docs);
        let text = String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("UTF-8");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON document per line"))
            .collect();
        assert_eq!(lines, docs);
        assert!(text.ends_with('\n'));
    }
}
