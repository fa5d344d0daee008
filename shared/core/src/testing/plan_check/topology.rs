//! Topology: settled domains, required anti-affinity, and topology spread and pod affinity
//! replayed in the scheduler's order.

use std::collections::{BTreeMap, BTreeSet};

use crate::labels;
use crate::pod::{AffinityTerm, Pod, TopologySpread, WhenUnsatisfiable};
use crate::requirements::Requirements;

use super::hosts::Host;
use super::{Ctx, taints_of, term_holds, terms_of};

fn hard_spreads(pod: &Pod) -> impl Iterator<Item = &TopologySpread> {
    pod.topology_spread
        .iter()
        .filter(|s| s.when_unsatisfiable == WhenUnsatisfiable::DoNotSchedule)
}

/// Whether `owner`'s spread counts `pod`: selected, in `owner`'s namespace.
fn spread_selects(spread: &TopologySpread, owner: &Pod, pod: &Pod) -> bool {
    owner.namespace == pod.namespace && spread.selector.matches(&pod.labels)
}

/// Whether `owner`'s pod (anti-)affinity term selects `pod`.
fn term_selects(ctx: &Ctx, term: &AffinityTerm, owner: &Pod, pod: &Pod) -> bool {
    term.selects_in(
        &owner.namespace,
        &pod.namespace,
        &pod.labels,
        &ctx.input.namespace_labels,
    )
}

/// Topology keys other than the hostname need a settled domain wherever a hard term counts a
/// placed pod: one of its own, or another pod's that selects it.
pub(super) fn domains_settled(ctx: &Ctx, hosts: &[Host], host_of: &[Option<usize>]) -> Result<(), String> {
    for (pod, host) in ctx.pods[..ctx.pending].iter().zip(host_of) {
        let Some(h) = *host else { continue };
        let mut keys: BTreeSet<&str> = hard_spreads(pod)
            .map(|s| s.topology_key.as_str())
            .chain(
                pod.pod_affinity
                    .iter()
                    .chain(&pod.pod_anti_affinity)
                    .map(|t| t.topology_key.as_str()),
            )
            .collect();
        for other in &ctx.pods {
            keys.extend(
                hard_spreads(other)
                    .filter(|s| spread_selects(s, other, pod))
                    .map(|s| s.topology_key.as_str()),
            );
            keys.extend(
                other
                    .pod_affinity
                    .iter()
                    .chain(&other.pod_anti_affinity)
                    .filter(|t| term_selects(ctx, t, other, pod))
                    .map(|t| t.topology_key.as_str()),
            );
        }
        if let Some(key) = keys
            .into_iter()
            .find(|k| *k != labels::HOSTNAME && hosts[h].settled(k).is_none())
        {
            return Err(format!(
                "{} counts in {key} topology but {} has no settled {key}",
                pod.key(),
                hosts[h].name
            ));
        }
    }
    Ok(())
}

/// Required anti-affinity, both ways, on the final state: no pod shares a domain with a pod
/// its anti-affinity selects (two pods bound before are the cluster's business, not the plan's).
pub(super) fn anti_affinity_holds(
    ctx: &Ctx,
    hosts: &[Host],
    host_of: &[Option<usize>],
) -> Result<(), String> {
    for (a, pod) in ctx.pods.iter().enumerate() {
        let Some(ha) = host_of[a] else { continue };
        for term in &pod.pod_anti_affinity {
            let Some(mine) = hosts[ha].settled(&term.topology_key) else {
                continue;
            };
            for (b, other) in ctx.pods.iter().enumerate() {
                if b == a || (a >= ctx.pending && b >= ctx.pending) {
                    continue;
                }
                let Some(hb) = host_of[b] else { continue };
                if term_selects(ctx, term, pod, other)
                    && hosts[hb].settled(&term.topology_key).as_ref() == Some(&mine)
                {
                    return Err(format!(
                        "{} and {} share {} {mine} against anti-affinity",
                        pod.key(),
                        other.key(),
                        term.topology_key
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The pods counted so far in topology, with each one's domain per topology key.
struct Counts<'c> {
    ctx: &'c Ctx<'c>,
    counted: Vec<bool>,
    /// Per key: the domain of each pod's host, when the host has a settled one.
    domains: BTreeMap<String, Vec<Option<String>>>,
}

impl Counts<'_> {
    /// The pods `selects` picks that are counted in `domain` of `key`.
    fn in_domain(&self, key: &str, domain: &str, selects: impl Fn(&Pod) -> bool) -> i64 {
        let Some(domains) = self.domains.get(key) else {
            return 0;
        };
        let n = self
            .ctx
            .pods
            .iter()
            .enumerate()
            .filter(|(q, pod)| self.counted[*q] && domains[*q].as_deref() == Some(domain) && selects(pod))
            .count();
        i64::try_from(n).unwrap_or(i64::MAX)
    }

    /// The pods `selects` picks that are counted anywhere.
    fn total(&self, selects: impl Fn(&Pod) -> bool) -> usize {
        self.ctx
            .pods
            .iter()
            .enumerate()
            .filter(|(q, pod)| self.counted[*q] && selects(pod))
            .count()
    }
}

/// Replays the placements in the scheduler's order for spread and pod affinity.
pub(super) fn spread_and_affinity_replayed(
    ctx: &Ctx,
    hosts: &[Host],
    host_of: &[Option<usize>],
) -> Result<(), String> {
    let promised: BTreeSet<&str> = ctx
        .input
        .in_flight
        .iter()
        .flat_map(|c| c.pods.iter().map(String::as_str))
        .collect();
    let mut order: Vec<usize> = (0..ctx.pending).filter(|p| host_of[*p].is_some()).collect();
    order.sort_by_key(|&p| {
        let pod = ctx.pods[p];
        (
            !promised.contains(pod.key().as_str()),
            -pod.requests.cpu(),
            -pod.requests.memory(),
            pod.created_at,
            p,
        )
    });
    let keys: BTreeSet<&str> = ctx.pods[..ctx.pending]
        .iter()
        .flat_map(|pod| {
            hard_spreads(pod)
                .map(|s| s.topology_key.as_str())
                .chain(pod.pod_affinity.iter().map(|t| t.topology_key.as_str()))
        })
        .collect();
    let domains = keys
        .into_iter()
        .map(|key| {
            let of_pods = host_of
                .iter()
                .map(|h| h.and_then(|h| hosts[h].settled(key)))
                .collect();
            (key.to_string(), of_pods)
        })
        .collect();
    // Bound pods count from the start.
    let mut counts = Counts {
        ctx,
        counted: (0..ctx.pods.len())
            .map(|p| p >= ctx.pending && host_of[p].is_some())
            .collect(),
        domains,
    };
    // The scheduler tries a pod that fits nowhere again after the others (its affinity target
    // may come later), so the replay does too: a pod whose check fails waits for the next pass,
    // and the plan is wrong only when a pass places none of the waiting pods.
    let mut waiting = order;
    while !waiting.is_empty() {
        let mut first_error = None;
        let before = waiting.len();
        let mut still = Vec::new();
        for p in waiting {
            let h = host_of[p].unwrap_or_default();
            match spread_holds(&counts, hosts, p, h).and_then(|()| pod_affinity_holds(&counts, hosts, p, h)) {
                Ok(()) => counts.counted[p] = true,
                Err(e) => {
                    first_error.get_or_insert(e);
                    still.push(p);
                }
            }
        }
        if still.len() == before {
            return Err(first_error.unwrap_or_default());
        }
        waiting = still;
    }
    Ok(())
}

/// Every hard spread of pod `p` holds on host `h`, given the pods counted so far.
fn spread_holds(counts: &Counts, hosts: &[Host], p: usize, h: usize) -> Result<(), String> {
    let ctx = counts.ctx;
    let pod = ctx.pods[p];
    for spread in hard_spreads(pod) {
        let key = spread.topology_key.as_str();
        let Some(here) = hosts[h].settled(key) else {
            continue;
        };
        let selects = |q: &Pod| spread_selects(spread, pod, q);
        let mine = counts.in_domain(key, &here, selects) + i64::from(selects(pod));
        let max_skew = i64::from(spread.max_skew);
        let ok = if key == labels::HOSTNAME {
            // A new node is always a domain with none: the minimum is 0.
            mine <= max_skew
        } else {
            // Any term the host satisfies may be the one the pod was placed under.
            terms_of(pod)
                .iter()
                .filter(|t| hosts[h].variants.iter().all(|v| term_holds(t, &v.labels)))
                .any(|t| {
                    let min = eligible(ctx, hosts, pod, t, key)
                        .iter()
                        .chain([&here])
                        .map(|d| counts.in_domain(key, d, selects))
                        .min()
                        .unwrap_or(0);
                    mine - min <= max_skew
                })
        };
        if !ok {
            return Err(format!(
                "{} on {} breaks its {key} spread (maxSkew {}): {mine} there",
                pod.key(),
                hosts[h].name,
                spread.max_skew,
            ));
        }
    }
    Ok(())
}

/// Pod `p`'s required pod affinity holds on host `h`, given the pods counted so far: the
/// domain holds a pod the term selects, or none is anywhere yet and the pod selects itself.
fn pod_affinity_holds(counts: &Counts, hosts: &[Host], p: usize, h: usize) -> Result<(), String> {
    let ctx = counts.ctx;
    let pod = ctx.pods[p];
    for term in &pod.pod_affinity {
        let key = term.topology_key.as_str();
        let here = hosts[h]
            .settled(key)
            .ok_or_else(|| format!("{}: its affinity domain {key} is unsettled", pod.key()))?;
        let selects = |q: &Pod| term_selects(ctx, term, pod, q);
        let total = counts.total(selects);
        let ok = if total > 0 {
            counts.in_domain(key, &here, selects) > 0
        } else {
            selects(pod)
        };
        if !ok {
            return Err(format!(
                "{} on {} ({here}) breaks its {key} affinity ({total} selected placed before)",
                pod.key(),
                hosts[h].name
            ));
        }
    }
    Ok(())
}

/// Domains a pod under one node-affinity term could land in: where some pool that it
/// tolerates could launch a node it fits and matches, or a schedulable node or in-flight claim
/// it matches is. A narrower set than any scheduler counts, so the skew measured over it is
/// never stricter than the scheduler's own.
fn eligible(ctx: &Ctx, hosts: &[Host], pod: &Pod, term: &[Requirements], key: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for node in &ctx.launchable {
        if pod.tolerates(taints_of(&ctx.input.pools[node.pool]))
            && term_holds(term, &node.labels)
            && node.room.fits(&pod.requests)
            && let Some(d) = node.labels.get(key)
        {
            out.insert(d.clone());
        }
    }
    for host in hosts.iter().filter(|h| h.fixed_and_schedulable()) {
        let Some(d) = host.settled(key) else { continue };
        if host
            .variants
            .iter()
            .all(|v| term_holds(term, &v.labels) && pod.tolerates(&v.taints))
        {
            out.insert(d);
        }
    }
    out
}
