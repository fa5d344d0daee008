//! Topology: settled domains, anti-affinity across hosts, and topology spread and pod affinity
//! replayed in the scheduler's order.

use std::collections::{BTreeMap, BTreeSet};

use nodewright_core::scheduler::Input;

use super::hosts::{Host, Res, minus, node_variant_labels, overhead};
use super::matching::{is_unavailable, pool_allows, term_holds, terms_of};
use crate::input::pod_key;
use crate::specs::{APPS, Key, NodeReq, PodSpec, World, catalog};

/// (key as u8, domain, app) → pods counted so far.
type Counts = BTreeMap<(u8, String, usize), i64>;

/// Zone and capacity-type keys need a settled domain wherever a hard term counts the pod.
pub fn domains_settled(w: &World, hosts: &[Host], host_of: &[usize]) -> Result<(), String> {
    let counted = |key: Key, app: usize| {
        w.pods.iter().any(|s| {
            s.spreads
                .iter()
                .any(|sp| sp.hard && sp.key == key && sp.app_selected(s) == app)
                || s.affinity == Some((key, app))
                || s.anti == Some((key, app))
        })
    };
    for (p, s) in w.pods.iter().enumerate() {
        let h = host_of[p];
        if h == usize::MAX {
            continue;
        }
        for key in [Key::Zone, Key::CapacityType] {
            let own = s.spreads.iter().any(|sp| sp.hard && sp.key == key)
                || s.affinity.is_some_and(|(k, _)| k == key)
                || s.anti.is_some_and(|(k, _)| k == key);
            if (own || counted(key, s.app)) && hosts[h].settled(key).is_none() {
                return Err(format!(
                    "p{p} counts in {key:?} topology but {} has no settled {key:?}",
                    hosts[h].name
                ));
            }
        }
    }
    Ok(())
}

/// Zone (and capacity-type) anti-affinity, symmetric, on the final state.
pub fn anti_affinity_across_hosts(w: &World, hosts: &[Host], host_of: &[usize]) -> Result<(), String> {
    for (p, s) in w.pods.iter().enumerate() {
        for key in [Key::Zone, Key::CapacityType] {
            let Some((_, target)) = s.anti.filter(|(k, _)| *k == key) else {
                continue;
            };
            if host_of[p] == usize::MAX {
                continue;
            }
            let mine = hosts[host_of[p]].settled(key);
            for (q, o) in w.pods.iter().enumerate() {
                if q != p
                    && o.app == target
                    && host_of[q] != usize::MAX
                    && hosts[host_of[q]].settled(key) == mine
                {
                    return Err(format!(
                        "p{p} and p{q} share {key:?} {mine:?} against anti-affinity"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Replays the placements in the scheduler's order for spread and pod affinity.
pub fn spread_and_affinity_replayed(
    w: &World,
    input: &Input,
    hosts: &[Host],
    host_of: &[usize],
) -> Result<(), String> {
    let reserved: BTreeSet<String> = input
        .in_flight
        .iter()
        .flat_map(|c| c.pods.iter().cloned())
        .collect();
    let mut order: Vec<usize> = (0..w.pods.len()).collect();
    order.sort_by_key(|&i| {
        let s = &w.pods[i];
        (!reserved.contains(&pod_key(i)), -s.cpu_m, -(s.mem_mi), i)
    });
    // Bound pods count from the start.
    let mut counts = Counts::new();
    let mut totals: BTreeMap<usize, i64> = BTreeMap::new();
    for (h, host) in hosts.iter().enumerate() {
        for b in &host.bound {
            bump(hosts, &mut counts, h, b.0);
            *totals.entry(b.0).or_default() += 1;
        }
    }
    // The scheduler tries a pod that fits nowhere again after the others (its affinity target
    // may come later), so the replay does too: a pod whose check fails waits for the next pass,
    // and the plan is wrong only when a pass places none of the waiting pods.
    let check = |p: usize, h: usize, counts: &Counts, totals: &BTreeMap<usize, i64>| {
        spread_holds(w, input, hosts, p, h, counts)?;
        pod_affinity_holds(w, hosts, p, h, counts, totals)
    };
    let mut waiting: Vec<usize> = order.into_iter().filter(|p| host_of[*p] != usize::MAX).collect();
    while !waiting.is_empty() {
        let mut first_error = None;
        let before = waiting.len();
        waiting.retain(|&p| {
            let h = host_of[p];
            match check(p, h, &counts, &totals) {
                Ok(()) => {
                    bump(hosts, &mut counts, h, w.pods[p].app);
                    *totals.entry(w.pods[p].app).or_default() += 1;
                    false
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                    true
                }
            }
        });
        if waiting.len() == before {
            return Err(first_error.unwrap_or_default());
        }
    }
    Ok(())
}

fn bump(hosts: &[Host], counts: &mut Counts, h: usize, app: usize) {
    for key in [Key::Zone, Key::Host, Key::CapacityType] {
        if let Some(d) = hosts[h].settled(key) {
            *counts.entry((key as u8, d, app)).or_default() += 1;
        }
    }
}

fn count(counts: &Counts, key: Key, d: &str, app: usize) -> i64 {
    counts.get(&(key as u8, d.to_string(), app)).copied().unwrap_or(0)
}

/// Every hard spread of pod `p` holds on host `h`, given the pods counted so far.
fn spread_holds(
    w: &World,
    input: &Input,
    hosts: &[Host],
    p: usize,
    h: usize,
    counts: &Counts,
) -> Result<(), String> {
    let s = &w.pods[p];
    for sp in s.spreads.iter().filter(|sp| sp.hard) {
        let Some(here) = hosts[h].settled(sp.key) else {
            continue;
        };
        let mine = count(counts, sp.key, &here, s.app) + 1;
        let ok = if sp.key == Key::Host {
            // A new node is always a domain with none: the minimum is 0.
            mine <= i64::from(sp.max_skew)
        } else {
            // Any term the host satisfies may be the one the pod was placed under.
            terms_of(s)
                .iter()
                .filter(|t| hosts[h].variants.iter().all(|v| term_holds(s, t, &v.labels)))
                .any(|t| {
                    let domains = eligible(w, input, hosts, s, t, sp.key);
                    let min = domains
                        .iter()
                        .chain([&here])
                        .map(|d| count(counts, sp.key, d, s.app))
                        .min()
                        .unwrap_or(0);
                    mine - min <= i64::from(sp.max_skew)
                })
        };
        if !ok {
            return Err(format!(
                "p{p} on {} breaks its {:?} spread (maxSkew {}): {} there, counts {:?}",
                hosts[h].name,
                sp.key,
                sp.max_skew,
                mine,
                counts
                    .iter()
                    .filter(|((k, _, a), _)| *k == sp.key as u8 && *a == s.app)
                    .collect::<Vec<_>>()
            ));
        }
    }
    Ok(())
}

/// Pod `p`'s required pod affinity holds on host `h`, given the pods counted so far.
fn pod_affinity_holds(
    w: &World,
    hosts: &[Host],
    p: usize,
    h: usize,
    counts: &Counts,
    totals: &BTreeMap<usize, i64>,
) -> Result<(), String> {
    let s = &w.pods[p];
    if let Some((key, target)) = s.affinity {
        let here = hosts[h].settled(key).ok_or("affinity domain unsettled")?;
        let total = totals.get(&target).copied().unwrap_or(0);
        let ok = if total > 0 {
            count(counts, key, &here, target) > 0
        } else {
            s.app == target
        };
        if !ok {
            return Err(format!(
                "p{p} on {} ({here}) breaks its {key:?} affinity to {} ({total} placed before)",
                hosts[h].name, APPS[target]
            ));
        }
    }
    Ok(())
}

/// Zones (or capacity types) a pod under one node-affinity term could land in: where some pool
/// that it tolerates offers a type it fits and matches, or a schedulable node or in-flight claim
/// it matches is. A narrower set than any scheduler counts, so the skew measured over it is
/// never stricter than the scheduler's own.
fn eligible(
    w: &World,
    input: &Input,
    hosts: &[Host],
    s: &PodSpec,
    term: &[NodeReq],
    key: Key,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (pi, pool) in w.pools.iter().enumerate() {
        if pool.tainted && !s.tolerates {
            continue;
        }
        for t in catalog().iter() {
            for o in &t.offerings {
                if !pool_allows(pool, t, &o.zone, o.capacity_type)
                    || is_unavailable(input, &t.name, &o.zone, o.capacity_type)
                {
                    continue;
                }
                let l = node_variant_labels(t, &o.zone, o.capacity_type, &format!("pool{pi}"), pool.team);
                let room = minus(Res::of(&t.allocatable), overhead(w, &l, pool.tainted));
                if term_holds(s, term, &l) && Res::pod(s).within(&room) {
                    out.insert(l[key.label()].clone());
                }
            }
        }
    }
    // Existing nodes and in-flight claims come first among the hosts.
    for (i, host) in hosts.iter().take(w.nodes.len() + w.claims.len()).enumerate() {
        let cordoned = w.nodes.get(i).is_some_and(|n| n.cordoned);
        let Some(d) = host.settled(key) else { continue };
        if !cordoned
            && host
                .variants
                .iter()
                .all(|v| term_holds(s, term, &v.labels) && (!v.tainted || s.tolerates))
        {
            out.insert(d);
        }
    }
    out
}
