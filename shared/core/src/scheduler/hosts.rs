//! Existing nodes and in-flight claims: hosts with fixed labels and room that take pending pods
//! before anything new is launched.

use std::collections::{BTreeMap, HashMap};

use super::Input;
use super::offerings::*;
use super::pools::*;
use super::solver::Solver;
use super::view::*;
use crate::catalog::{CapacityType, InstanceType};
use crate::labels;
use crate::pod::{HostPort, Pod, Taint, untolerated};
use crate::requirements::Requirements;
use crate::resources::Resources;

/// Existing nodes and in-flight claims.
pub(super) struct FixedHost {
    pub(super) name: String,
    pub(super) in_flight: bool,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) taints: Vec<Taint>,
    pub(super) free: Resources,
    pub(super) unschedulable: bool,
    pub(super) zone: Option<u32>,
    pub(super) ct: Option<u32>,
    pub(super) host_ports: Vec<HostPort>,
    pub(super) placed: Vec<usize>,
    /// Pods (`ns/name`) an in-flight claim was launched for.
    pub(super) launched_for: Vec<String>,
}

impl<'a> Solver<'a> {
    pub(super) fn host_launched_for(&self, pod: &Pod) -> Option<usize> {
        let key = pod.key();
        self.fixed.iter().position(|h| h.launched_for.contains(&key))
    }

    pub(super) fn fits_fixed(&mut self, h: usize, pod: &Pod, view: &PodView) -> bool {
        let f = &self.fixed[h];
        if f.unschedulable || !f.free.fits(&pod.requests) {
            return false;
        }
        if view.untolerated(pod, &f.taints).is_some() || !view.term.matches_labels(&f.labels) {
            return false;
        }
        if pod
            .host_ports
            .iter()
            .any(|p| f.host_ports.iter().any(|q| p.conflicts(q)))
        {
            return false;
        }
        if view.pins_zone && f.zone.is_none_or(|z| view.zone_allowed & (1 << z) == 0) {
            return false;
        }
        if view.pins_ct && f.ct.is_none_or(|c| view.ct_allowed & (1 << c) == 0) {
            return false;
        }
        self.host_topology_ok(view, h as u32)
    }

    pub(super) fn commit_fixed(&mut self, h: usize, i: usize, view: &PodView) {
        let pod = &self.input.pending[i];
        let f = &mut self.fixed[h];
        f.free.sub(&pod.requests);
        f.host_ports.extend(pod.host_ports.iter().cloned());
        f.placed.push(i);
        self.record(pod, h as u32, Some(view));
    }
}

/// The taints that will stay on a node: on a node of a pool not yet initialized, the pool's
/// startup taints and the ephemeral ones are on their way off, so pods are planned past them.
fn lasting_taints(node: &crate::pod::Node, pools: &[Pool]) -> Vec<Taint> {
    let initialized = node
        .labels
        .get(labels::NODE_INITIALIZED)
        .is_some_and(|v| v == "true");
    let pool = node
        .labels
        .get(labels::NODEPOOL)
        .and_then(|name| pools.iter().find(|p| p.name == name));
    match pool {
        Some(pool) if !initialized => node
            .taints
            .iter()
            .filter(|t| {
                !labels::EPHEMERAL_TAINTS.contains(&t.key.as_str())
                    && !pool
                        .startup_taints
                        .iter()
                        .any(|s| s.key == t.key && s.effect == t.effect)
            })
            .cloned()
            .collect(),
        _ => node.taints.clone(),
    }
}

/// Existing nodes, with the room their running pods leave.
pub(super) fn existing(input: &Input, pools: &[Pool], zone_index: &HashMap<&str, u32>) -> Vec<FixedHost> {
    let mut fixed = Vec::new();
    for n in &input.nodes {
        let mut free = n.node.allocatable.clone();
        let mut host_ports = Vec::new();
        for p in n.pods.iter().filter(|p| !p.terminal) {
            free.sub(&p.requests);
            host_ports.extend(p.host_ports.iter().cloned());
        }
        fixed.push(FixedHost {
            name: n.node.name.clone(),
            in_flight: false,
            zone: n
                .node
                .labels
                .get(labels::ZONE)
                .and_then(|z| zone_index.get(z.as_str()).copied()),
            ct: n
                .node
                .labels
                .get(labels::CAPACITY_TYPE)
                .and_then(|c| CapacityType::parse(c))
                .map(ct_index),
            labels: n.node.labels.clone(),
            taints: lasting_taints(&n.node, pools),
            free,
            unschedulable: n.node.unschedulable || n.node.deleting,
            host_ports,
            placed: Vec::new(),
            launched_for: Vec::new(),
        });
    }
    fixed
}

/// In-flight claims of known pools: the room and labels every candidate they may come up as has.
pub(super) fn in_flight(input: &Input, pools: &[Pool], zone_index: &HashMap<&str, u32>) -> Vec<FixedHost> {
    let mut fixed = Vec::new();
    for claim in &input.in_flight {
        // A claim whose NodePool is gone still comes up and takes its pods: daemonsets are
        // then judged by the claim's own labels.
        let own_labels = Requirements::from_labels(&claim.labels);
        let pool_reqs = pools
            .iter()
            .find(|p| p.name == claim.nodepool)
            .map_or(&own_labels, |p| &p.reqs);
        let launched = claim.instance.as_ref();
        // Looked up in every catalog of the round: the claim exists even if its type has since
        // run out of capacity, left the pool's requirements or its zone lost its subnet. Until
        // EC2 answers, any candidate may come up: count only the room and the labels every
        // candidate has.
        let names: Vec<&String> = match launched {
            Some(i) => vec![&i.instance_type],
            None => claim.instance_types.iter().collect(),
        };
        let own_first = input
            .pools
            .iter()
            .filter(|p| p.nodepool.name() == claim.nodepool)
            .chain(input.pools.iter().filter(|p| p.nodepool.name() != claim.nodepool));
        let catalogs: Vec<&[InstanceType]> = own_first.map(|p| p.instance_types.as_slice()).collect();
        let candidates: Vec<&InstanceType> = names
            .into_iter()
            .filter_map(|n| catalogs.iter().find_map(|c| c.iter().find(|t| &t.name == n)))
            .collect();
        let usable = |it: &InstanceType| {
            let mut room = it.allocatable.clone();
            room.sub(&daemon_overhead(&input.daemonsets, pool_reqs, it, &claim.taints));
            room
        };
        // A type no catalog knows: what it was launched for is all the room it is sure to have.
        let (mut free, mut type_labels) = match candidates.first() {
            Some(first) => (usable(first), first.labels.clone()),
            None => (claim.requests.clone(), BTreeMap::new()),
        };
        for t in candidates.iter().skip(1) {
            free.min_with(&usable(t));
            type_labels.retain(|k, v| t.labels.get(k) == Some(v));
        }
        let mut labels = claim.labels.clone();
        labels.extend(type_labels);
        labels.insert(labels::NODEPOOL.into(), claim.nodepool.clone());
        let (zone, ct) = match launched {
            Some(i) => {
                labels.insert(labels::ZONE.into(), i.zone.clone());
                labels.insert(labels::CAPACITY_TYPE.into(), i.capacity_type.as_str().into());
                (
                    zone_index.get(i.zone.as_str()).copied(),
                    Some(ct_index(i.capacity_type)),
                )
            }
            // Not launched yet: EC2 may still pick any of its zones and capacity types, so
            // only a single one is a settled domain (and a label pods can select).
            None => {
                let zone = match claim.zones.as_slice() {
                    [z] => {
                        labels.insert(labels::ZONE.into(), z.clone());
                        zone_index.get(z.as_str()).copied()
                    }
                    _ => None,
                };
                let ct = match claim.capacity_types.as_slice() {
                    [c] => {
                        labels.insert(labels::CAPACITY_TYPE.into(), c.as_str().into());
                        Some(ct_index(*c))
                    }
                    _ => None,
                };
                (zone, ct)
            }
        };
        fixed.push(FixedHost {
            name: claim.id.clone(),
            in_flight: true,
            labels,
            taints: claim.taints.clone(),
            free,
            unschedulable: false,
            zone,
            ct,
            // A daemonset that may run on whichever candidate comes up holds its ports.
            host_ports: input
                .daemonsets
                .iter()
                .filter(|d| untolerated(&d.tolerations, &claim.taints).is_none())
                .filter(|d| candidates.iter().any(|it| daemon_lands(d, pool_reqs, it)))
                .flat_map(|d| d.host_ports.iter().cloned())
                .collect(),
            placed: Vec::new(),
            launched_for: claim.pods.clone(),
        });
    }
    fixed
}
