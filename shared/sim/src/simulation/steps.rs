//! The scenario's steps as they fall due, and the interruptions EC2 sends.

use nodewright_core::catalog::CapacityType;
use nodewright_core::interruption::{Kind, Notice, SPOT_NOTICE_MS};
use nodewright_core::pod::Millis;
use nodewright_core::ports::{Clock, Cloud};

use crate::cloud::OfferingPattern;
use crate::report::Event;
use crate::scenario::{Interrupt, InterruptKind};

use super::Simulation;

impl Simulation {
    pub(super) fn apply_due_steps(&mut self) {
        let now = self.clock.now();
        self.reclaim_due(now);
        let elapsed = self.elapsed_ms();
        while let Some(step) = self
            .scenario
            .steps
            .get(self.steps_done)
            .filter(|s| s.at_ms <= elapsed)
        {
            let step = step.clone();
            self.steps_done += 1;
            for p in &step.out_of_capacity {
                self.cloud.set_out_of_capacity(p.clone());
                self.record(Event::OutOfCapacity {
                    offerings: p.to_string(),
                });
            }
            for p in &step.restore_capacity {
                self.cloud.restore_capacity(p);
                self.record(Event::CapacityRestored {
                    offerings: p.to_string(),
                });
            }
            if !step.apply.names().is_empty() {
                for p in &step.apply.nodepools {
                    self.cluster.apply_nodepool(p.clone());
                }
                for c in &step.apply.nodeclasses {
                    self.cluster.apply_nodeclass(c.clone());
                }
                for d in &step.apply.daemonsets {
                    self.cluster.apply_daemonset(d.clone());
                }
                for b in &step.apply.pdbs {
                    self.cluster.apply_pdb(b.clone());
                }
                for c in &step.apply.storage_classes {
                    self.cluster.apply_storage_class(c.clone());
                }
                self.record(Event::Applied {
                    objects: step.apply.names(),
                });
            }
            if step.release_ami {
                let release = self.cloud.release_ami();
                self.record(Event::AmiReleased { release });
            }
            if let Some(interrupt) = &step.interrupt {
                self.interrupt(interrupt, now);
            }
            for p in &step.fail_registration {
                self.kubelet.fail_registration(p.clone(), now);
                self.record(Event::RegistrationFailing {
                    offerings: p.to_string(),
                });
            }
            for p in &step.restore_registration {
                self.kubelet.restore_registration(p, now);
                self.record(Event::RegistrationRestored {
                    offerings: p.to_string(),
                });
            }
            if let Some(delete) = &step.delete_node {
                let mut nodes = self.cluster.nodes();
                nodes.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
                let names: Vec<String> = match (&delete.node, delete.count) {
                    (Some(name), _) => vec![name.clone()],
                    (None, Some(count)) => nodes
                        .iter()
                        .filter(|n| !n.deleting)
                        .take(count)
                        .map(|n| n.name.clone())
                        .collect(),
                    (None, None) => Vec::new(),
                };
                for node in names {
                    if self.cluster.delete_node_as_user(&node) {
                        self.record(Event::DeleteRequested { node });
                    }
                }
            }
            for (name, replicas) in &step.scale {
                // The scenario was checked to name only its own workloads.
                if let Ok(from) = self.cluster.scale(name, *replicas) {
                    self.record(Event::Scaled {
                        workload: name.clone(),
                        from,
                        to: *replicas,
                    });
                }
            }
        }
    }

    /// EC2 sends the interruption's events; the interruption function acts on them at once.
    fn interrupt(&mut self, interrupt: &Interrupt, now: Millis) {
        let pattern = OfferingPattern {
            instance_type: interrupt.instance_type.clone(),
            zone: interrupt.zone.clone(),
            capacity_type: interrupt.capacity_type,
        };
        let mut running: Vec<_> = self
            .cloud
            .instances()
            .into_iter()
            .filter(|i| i.terminated_at.is_none())
            .filter(|i| {
                pattern.matches(&nodewright_core::ports::OfferingKey {
                    instance_type: i.instance.instance_type.clone(),
                    zone: i.instance.zone.clone(),
                    capacity_type: i.instance.capacity_type,
                })
            })
            .collect();
        running.sort_by(|a, b| {
            (a.instance.launched_at, &a.instance.id).cmp(&(b.instance.launched_at, &b.instance.id))
        });
        let kind = match interrupt.kind {
            InterruptKind::Spot => Kind::SpotInterruption,
            InterruptKind::Rebalance => Kind::Rebalance,
            InterruptKind::Scheduled => Kind::ScheduledChange,
            InterruptKind::Stop => Kind::Stopping,
        };
        let mut notices = Vec::new();
        for sim in running.into_iter().take(interrupt.count) {
            let id = sim.instance.id.clone();
            let node = self.node_of(&id);
            if let Some(n) = &node {
                self.interrupted_nodes.insert(n.clone());
            }
            self.record(Event::Interrupted {
                instance: id.clone(),
                node,
                interruption: format!("{:?}", interrupt.kind).to_lowercase(),
            });
            // EC2 takes back spot instances two minutes after the warning.
            if interrupt.kind == InterruptKind::Spot && sim.instance.capacity_type == CapacityType::Spot {
                self.reclaims.push((id.clone(), now + SPOT_NOTICE_MS));
            }
            notices.push(Notice {
                id: format!("sim-{id}-{}", kind.as_str()),
                kind,
                instance_ids: vec![id],
            });
        }
        self.handle_interruptions(&notices);
    }

    /// Spot instances whose two minutes are up go, and EC2 says so.
    fn reclaim_due(&mut self, now: Millis) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.reclaims)
            .into_iter()
            .partition(|(_, at)| *at <= now);
        self.reclaims = later;
        let mut notices = Vec::new();
        for (id, _) in due {
            let node = self.node_of(&id);
            if pollster::block_on(self.cloud.terminate(&id)).is_ok() {
                self.record(Event::Interrupted {
                    instance: id.clone(),
                    node,
                    interruption: "reclaimed".into(),
                });
                notices.push(Notice {
                    id: format!("sim-{id}-terminated"),
                    kind: Kind::Terminated,
                    instance_ids: vec![id],
                });
            }
        }
        if !notices.is_empty() {
            self.handle_interruptions(&notices);
        }
    }

    fn node_of(&self, instance_id: &str) -> Option<String> {
        self.cluster
            .nodes()
            .into_iter()
            .find(|n| n.instance_id() == Some(instance_id))
            .map(|n| n.name)
    }
}
