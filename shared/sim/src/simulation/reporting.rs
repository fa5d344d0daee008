//! What the simulation reports: the timeline of events, and the summary at the end.

use std::collections::BTreeMap;

use nodewright_core::lifecycle::{
    ClaimNode, ClaimReason, ClaimTerminated, HeldEviction, LifecycleReport, NodeDeleted, PodOnNode,
};
use nodewright_core::pod::Millis;
use nodewright_core::ports::Clock;
use nodewright_core::provisioning::RoundReport;

use crate::cluster::PodStatus;
use crate::report::{Event, Latency, Report, Summary, TimelineEvent, format_offset};

use super::{START, Simulation};

impl Simulation {
    pub(super) fn record_lifecycle(&mut self, report: LifecycleReport) {
        for ClaimNode { claim, node } in report.registered {
            self.record(Event::Registered { node, claim });
        }
        for ClaimNode { claim, node } in report.initialized {
            self.record(Event::Initialized { node, claim });
        }
        for claim in report.registration_timeouts {
            self.record(Event::RegistrationTimeout { claim });
        }
        for ClaimReason { claim, reason } in report.terminating {
            self.record(Event::Terminating { claim, reason });
        }
        for PodOnNode { pod, node } in report.evicted {
            self.pods_evicted += 1;
            self.blocked_reported.remove(&pod);
            self.record(Event::Evicted { pod, node });
        }
        for HeldEviction {
            pod,
            node,
            reason: by,
        } in report.eviction_blocked
        {
            if self.blocked_reported.insert(pod.clone()) {
                self.record(Event::EvictionBlocked { pod, node, by });
            }
        }
        for NodeDeleted { node, reason } in report.nodes_deleted {
            self.record(Event::NodeDeleted { node, reason });
        }
        for ClaimTerminated {
            claim,
            instance,
            reason,
        } in report.terminated
        {
            self.record(Event::Terminated {
                claim,
                instance,
                reason,
            });
        }
        for error in report.failures {
            self.record(Event::RoundFailed { error });
        }
    }

    pub(super) fn record_round(&mut self, report: RoundReport) {
        if report.invalid_config != self.last_invalid_config {
            for error in &report.invalid_config {
                self.record(Event::InvalidConfig { error: error.clone() });
            }
            self.last_invalid_config = report.invalid_config.clone();
        }
        for l in report.launched {
            self.record(Event::Launched {
                claim: l.claim_id,
                nodepool: l.nodepool,
                instance_id: l.instance_id,
                instance_type: l.instance_type,
                zone: l.zone,
                capacity_type: l.capacity_type,
                price_per_hour: l.price,
                pods: l.pods,
            });
        }
        for error in report.failures {
            self.record(Event::LaunchFailed { error });
        }
        // A round that saw no pending pods did not plan, so it says nothing about them.
        if report.pods_pending > 0 {
            let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
            for u in &report.unschedulable {
                *by_reason.entry(u.reason.clone()).or_default() += 1;
            }
            let now: Vec<(String, usize)> = by_reason.into_iter().collect();
            if now != self.last_unprovisionable {
                for (reason, pods) in &now {
                    self.record(Event::CannotProvision {
                        pods: *pods,
                        reason: reason.clone(),
                    });
                }
                self.last_unprovisionable = now;
            }
        }
    }

    pub(super) fn record(&mut self, event: Event) {
        let at_ms = self.elapsed_ms();
        self.timeline.push(TimelineEvent {
            at: format_offset(at_ms),
            at_ms,
            event,
        });
    }

    /// The timeline so far and the summary as of now.
    pub fn report(&self) -> Report {
        let now = self.clock.now();
        let history = self.cluster.pod_history();
        let instances = self.cloud.instances();
        let latencies = history
            .iter()
            .filter_map(|r| Some(r.bound_at? - r.created_at))
            .collect();
        let pending_at_end = self
            .cluster
            .pods()
            .iter()
            .filter(|(p, s)| *s != PodStatus::Bound && !p.is_daemon())
            .count();
        // From +0.0: no instance is 0 hours and $0, not -0 (an empty f64 sum is -0.0).
        let node_hours = instances.iter().fold(0.0, |sum, i| sum + i.hours(now));
        let cost = instances.iter().fold(0.0, |sum, i| sum + i.price * i.hours(now));
        Report {
            scenario: self.scenario.name.clone(),
            description: self.scenario.description.clone(),
            timeline: self.timeline.clone(),
            summary: Summary {
                duration: format_offset(now - START),
                rounds: self.rounds,
                pods_created: history.len(),
                peak_pods_bound: self.peak_pods_bound,
                pods_never_bound: history.iter().filter(|r| r.bound_at.is_none()).count(),
                pods_pending_at_end: pending_at_end,
                instances_launched: instances.len(),
                peak_nodes: self.peak_nodes,
                nodes_at_end: self.cluster.node_count(),
                node_hours: round4(node_hours),
                total_cost: round4(cost),
                time_to_bind: Latency::of(latencies),
                pods_evicted: self.pods_evicted,
                pods_disrupted_seconds: self.pods_disrupted_seconds(&history, now),
                cost_per_hour_at_end: round4(self.running_cost_per_hour()),
                disruptions: self.disruptions.clone(),
                pdb_violations: self.pdb_violations + self.cluster.pdb_violations(),
            },
        }
    }

    /// For each pod that left an interrupted node, the time until the pod its workload made
    /// in its place was bound (or now).
    fn pods_disrupted_seconds(&self, history: &[crate::cluster::PodRecord], now: Millis) -> f64 {
        let mut used = vec![false; history.len()];
        let mut total: Millis = 0;
        for left in history.iter().filter(|r| {
            r.node
                .as_ref()
                .is_some_and(|n| self.interrupted_nodes.contains(n))
                && r.deleted_at.is_some()
        }) {
            let Some(at) = left.deleted_at else { continue };
            let replacement = history.iter().enumerate().find(|(i, r)| {
                !used[*i] && r.workload.is_some() && r.workload == left.workload && r.created_at == at
            });
            if let Some((i, r)) = replacement {
                used[i] = true;
                total += r.bound_at.unwrap_or(now) - at;
            }
        }
        total as f64 / 1000.0
    }
}

/// Four decimals: enough for dollars and hours, and stable in JSON.
pub(super) fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
