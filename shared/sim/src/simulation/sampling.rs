//! Reading the fleet without changing it: samples for charts, and the status view.

use nodewright_core::pod::Millis;
use nodewright_core::ports::Clock;

use crate::cluster::PodStatus;

use super::reporting::round4;
use super::{Simulation, TICK_MS};

/// The fleet at one moment of virtual time, as a chart plots it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Sample {
    /// From the start of the simulation.
    pub at_ms: Millis,
    /// Nodes in the cluster (registered, draining ones included).
    pub nodes: usize,
    /// Workload pods not bound to a node (daemon pods are not counted).
    pub pending_pods: usize,
    /// USD per hour of every instance not yet terminated, launched or booting ones included:
    /// what the fleet is billed at this moment.
    pub cost_per_hour: f64,
}

impl Simulation {
    /// Records a [`Sample`] after the tick at the start and every `every_ms` of virtual time
    /// after it (rounded up to whole ticks), and after the last tick. Reading the fleet changes
    /// nothing, so a sampled run reports exactly what an unsampled one does.
    pub fn sample_every(&mut self, every_ms: Millis) {
        self.sample_every_ms = Some(every_ms.max(TICK_MS));
        self.next_sample_ms = self.next_tick_ms;
    }

    /// The samples recorded so far, in time order.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The fleet now: nodes, pending workload pods, and what the running instances cost.
    pub fn sample(&self) -> Sample {
        let pending_pods = self
            .cluster
            .pods()
            .iter()
            .filter(|(p, s)| *s != PodStatus::Bound && !p.is_daemon())
            .count();
        Sample {
            at_ms: self.elapsed_ms(),
            nodes: self.cluster.node_count(),
            pending_pods,
            // `+ 0.0` turns the empty fleet's -0.0 (an empty float sum) into 0.
            cost_per_hour: round4(self.running_cost_per_hour()) + 0.0,
        }
    }

    /// USD per hour of the instances not terminated.
    pub(super) fn running_cost_per_hour(&self) -> f64 {
        self.cloud
            .instances()
            .iter()
            .filter(|i| i.terminated_at.is_none())
            .map(|i| i.price)
            .sum()
    }

    /// The fleet as `nodewright status` shows it, now.
    pub fn status(&self) -> nodewright_core::status::FleetStatus {
        let pods = self.cluster.pods();
        let nodes: Vec<nodewright_core::scheduler::ExistingNode> = self
            .cluster
            .nodes()
            .into_iter()
            .map(|node| nodewright_core::scheduler::ExistingNode {
                pods: pods
                    .iter()
                    .filter(|(p, _)| p.node_name.as_deref() == Some(node.name.as_str()))
                    .map(|(p, _)| p.clone())
                    .collect(),
                node,
            })
            .collect();
        nodewright_core::status::fleet_status(&nodes, &self.store.claims(), self.clock.now())
    }
}
