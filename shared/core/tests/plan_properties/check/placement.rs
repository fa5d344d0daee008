//! Per host: node affinity, taints, requests, host ports and hostname anti-affinity, on every
//! way the host can turn out.

use std::collections::BTreeSet;

use nodewright_core::labels;

use super::hosts::{Host, Res};
use super::matching::affinity_holds;
use crate::specs::{APPS, Key, World};

/// Checks every host that the plan puts pods on; returns the host of each pending pod
/// (`usize::MAX` for none).
pub fn hosts_respected(w: &World, hosts: &[Host]) -> Result<Vec<usize>, String> {
    let mut host_of = vec![usize::MAX; w.pods.len()];
    for (h, host) in hosts.iter().enumerate() {
        if host.placed.is_empty() {
            continue;
        }
        node_affinity_honoured(w, host)?;
        taints_tolerated(w, host)?;
        requests_fit(w, host)?;
        host_ports_unique(w, host)?;
        hostname_anti_affinity(w, host)?;
        for &p in &host.placed {
            host_of[p] = h;
        }
    }
    Ok(host_of)
}

/// nodeSelector and required node affinity hold on every variant.
fn node_affinity_honoured(w: &World, host: &Host) -> Result<(), String> {
    for v in &host.variants {
        for &p in &host.placed {
            let s = &w.pods[p];
            if !affinity_holds(s, &v.labels) {
                return Err(format!(
                    "p{p} on {} breaks its node affinity: {:?}",
                    host.name, s.terms
                ));
            }
        }
    }
    Ok(())
}

fn taints_tolerated(w: &World, host: &Host) -> Result<(), String> {
    for v in &host.variants {
        for &p in &host.placed {
            let s = &w.pods[p];
            if v.tainted && !s.tolerates {
                return Err(format!("p{p} on {} does not tolerate its taint", host.name));
            }
        }
    }
    Ok(())
}

/// The pods' requests fit the room every variant leaves.
fn requests_fit(w: &World, host: &Host) -> Result<(), String> {
    for v in &host.variants {
        let mut used = Res::default();
        for &p in &host.placed {
            used.add(Res::pod(&w.pods[p]));
        }
        if !used.within(&v.room) {
            return Err(format!(
                "{} ({:?}) holds {used:?}, room {:?}",
                host.name,
                v.labels.get(labels::INSTANCE_TYPE),
                v.room
            ));
        }
    }
    Ok(())
}

fn host_ports_unique(w: &World, host: &Host) -> Result<(), String> {
    let mut ports: BTreeSet<i32> = host.bound.iter().filter_map(|b| b.2).collect();
    for port in host.placed.iter().filter_map(|p| w.pods[*p].port) {
        if !ports.insert(port) {
            return Err(format!("host port {port} twice on {}", host.name));
        }
    }
    Ok(())
}

fn hostname_anti_affinity(w: &World, host: &Host) -> Result<(), String> {
    // Apps on the host, with who put them there: anti-affinity is symmetric.
    let apps: Vec<(usize, Option<usize>)> = host
        .bound
        .iter()
        .map(|b| (b.0, None))
        .chain(host.placed.iter().map(|p| (w.pods[*p].app, Some(*p))))
        .collect();
    for (j, &(_, who)) in apps.iter().enumerate() {
        let repels: Option<usize> = match who {
            Some(p) => w.pods[p].anti.filter(|(k, _)| *k == Key::Host).map(|(_, a)| a),
            None => host.bound.get(j).filter(|b| b.1).map(|b| b.0),
        };
        let Some(target) = repels else { continue };
        let others = apps
            .iter()
            .enumerate()
            // Pairs of bound pods are the cluster's business, not this plan's.
            .filter(|(k, (a, other))| *k != j && *a == target && (who.is_some() || other.is_some()))
            .count();
        if others > 0 {
            return Err(format!(
                "{} on {} shares it with {others} pod(s) of {} it is anti-affine to",
                who.map_or("a bound pod".to_string(), |p| format!("p{p}")),
                host.name,
                APPS[target],
            ));
        }
    }
    Ok(())
}
