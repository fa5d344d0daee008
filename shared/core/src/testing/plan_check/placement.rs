//! Per host: node affinity, taints, requests and host ports, on every way the host can turn
//! out.

use crate::labels;
use crate::pod::{HostPort, Pod};
use crate::resources::Resources;

use super::hosts::{Host, Kind};
use super::{Ctx, node_affinity_holds};

/// Checks every host that the plan puts pods on; returns the host of each of the checker's
/// pods (`None` for a pending pod left unschedulable).
pub(super) fn hosts_respected(ctx: &Ctx, hosts: &[Host]) -> Result<Vec<Option<usize>>, String> {
    let mut host_of = vec![None; ctx.pods.len()];
    for (h, host) in hosts.iter().enumerate() {
        for &p in host.bound.iter().chain(&host.placed) {
            host_of[p] = Some(h);
        }
        if host.placed.is_empty() {
            continue;
        }
        node_affinity_honoured(ctx, host)?;
        taints_tolerated(ctx, host)?;
        requests_fit(ctx, host)?;
        host_ports_unique(ctx, host)?;
    }
    Ok(host_of)
}

/// nodeSelector and required node affinity hold on every variant.
fn node_affinity_honoured(ctx: &Ctx, host: &Host) -> Result<(), String> {
    for v in &host.variants {
        for &p in &host.placed {
            if !node_affinity_holds(ctx.pods[p], &v.labels) {
                return Err(format!(
                    "{} on {} ({:?}) breaks its node affinity",
                    ctx.pods[p].key(),
                    host.name,
                    v.labels.get(labels::INSTANCE_TYPE)
                ));
            }
        }
    }
    Ok(())
}

fn taints_tolerated(ctx: &Ctx, host: &Host) -> Result<(), String> {
    for v in &host.variants {
        for &p in &host.placed {
            if !ctx.pods[p].tolerates(&v.taints) {
                return Err(format!(
                    "{} on {} does not tolerate its taints {:?}",
                    ctx.pods[p].key(),
                    host.name,
                    v.taints
                ));
            }
        }
    }
    Ok(())
}

/// The pods' requests fit the room every variant leaves.
fn requests_fit(ctx: &Ctx, host: &Host) -> Result<(), String> {
    let mut used = Resources::new();
    for &p in &host.placed {
        used.add(&ctx.pods[p].requests);
    }
    for v in &host.variants {
        if !v.room.fits(&used) {
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

/// No two pods on the host bind the same host port, unless both were bound before; on a node
/// to come, the daemonsets that would run there hold theirs.
fn host_ports_unique(ctx: &Ctx, host: &Host) -> Result<(), String> {
    let placed = ports(ctx, &host.placed);
    let mut taken = ports(ctx, &host.bound);
    if !matches!(host.kind, Kind::Node { .. }) {
        for v in &host.variants {
            let daemons = ctx
                .input
                .daemonsets
                .iter()
                .filter(|d| d.tolerates(&v.taints) && node_affinity_holds(d, &v.labels));
            for d in daemons {
                taken.extend(d.host_ports.iter().map(|port| (d.key(), port)));
            }
        }
    }
    for (i, (pod, a)) in placed.iter().enumerate() {
        if let Some((other, _)) = placed[i + 1..].iter().chain(&taken).find(|(_, b)| a.conflicts(b)) {
            return Err(format!(
                "host port {} twice on {}: {pod} and {other}",
                a.port, host.name
            ));
        }
    }
    Ok(())
}

/// The host ports of some of the checker's pods, with whose they are.
fn ports<'c>(ctx: &Ctx<'c>, which: &[usize]) -> Vec<(String, &'c HostPort)> {
    which
        .iter()
        .flat_map(|&p| {
            let pod: &'c Pod = ctx.pods[p];
            pod.host_ports.iter().map(move |port| (pod.key(), port))
        })
        .collect()
}
