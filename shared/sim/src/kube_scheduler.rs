//! The simulated kube-scheduler, the one both the simulator's cluster and the fake API server
//! use: where a pending pod goes, or the scheduler's message saying why nowhere, decided over
//! the core's pods and nodes with nothing read or written.
//!
//! A round is [`schedule`] (or, when each binding changes what later pods see, as the
//! simulator's volume provisioning does, [`KubeScheduler::place`] and [`KubeScheduler::bind`]
//! pod by pod). Pods go in [`queue_key`] order: priority, then creation time, as the default
//! `PrioritySort` queue orders them.
//!
//! Filters, in the default scheduler's order, each giving its reason for a node it rejects:
//! unschedulable (cordoned) nodes unless the pod tolerates their taint; taints (NoSchedule and
//! NoExecute); nodeSelector and required node affinity; resources against allocatable less what
//! the bound pods request (every short resource is a reason, as `NodeResourcesFit` gives them);
//! required topology spread (`DoNotSchedule`; nodes failing the pod's node affinity are not
//! counted as domains, taints are ignored); required pod affinity and anti-affinity, the
//! anti-affinity of pods already bound included. A pod's volumes are folded into its node
//! affinity first ([`Volumes::constrain`], the `VolumeBinding` filter); a pod whose volume
//! cannot be bound yet fits nowhere.
//!
//! Choice among the nodes that fit: the real scheduler adds up several scores (least
//! allocated, balanced allocation, preferred affinities, `ScheduleAnyway` spread,
//! PreferNoSchedule taints, image locality) and breaks ties at random; this one keeps only
//! `NodeResourcesFit`'s default, the least allocated node by CPU and memory, ties going to the
//! first by name. (The fake API server's own scheduler used to take the first fitting node by
//! name, which packs pods where the real scheduler spreads them.)
//!
//! Messages are the real `FitError`'s: `0/3 nodes are available: 1 Insufficient cpu, 2 node(s)
//! had untolerated taint {k: v}.`, counts per reason sorted as strings, or `no nodes available
//! to schedule pods` in an empty cluster; the preemption suffix is left out.
//!
//! Not modelled: preemption, host ports (`NodePorts`), volume limits, nominated nodes, and node
//! affinity's `matchFields` (the DaemonSet controller's pin to one node), which the pod
//! conversion drops. A node being deleted takes no new pods: the real scheduler would place
//! pods on it until whoever deletes it cordons or taints it, which nodewright does first.

use std::cmp::Reverse;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use nodewright_core::pod::{
    AffinityTerm, LabelSelector, Millis, Node, Pod, Taint, TaintEffect, TopologySpread, WhenUnsatisfiable,
    untolerated,
};
use nodewright_core::resources::{ResourceName, Resources};
use nodewright_core::volumes::Volumes;

/// The scheduler's message when the cluster has no node.
pub const NO_NODES: &str = "no nodes available to schedule pods";

/// The taint a cordoned node is treated as having; pods that tolerate it may still go there.
const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// Where a pod goes (the node's name), or the scheduler's message saying why nowhere.
pub type Placement = Result<String, String>;

/// A pod bound to a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Binding {
    /// `namespace/name`.
    pub pod: String,
    pub node: String,
}

/// The queue order: higher priority first, then older, then by `namespace/name`.
pub fn queue_key(pod: &Pod) -> (Reverse<i32>, Millis, String) {
    (Reverse(pod.priority), pod.created_at, pod.key())
}

/// One scheduling round: each pending pod, in queue order, placed against the nodes and the
/// pods already bound (and those placed before it). Returns every pending pod with its
/// placement, in queue order.
pub fn schedule<'a>(
    pending: impl IntoIterator<Item = &'a Pod>,
    nodes: &BTreeMap<String, Node>,
    bound: impl IntoIterator<Item = &'a Pod>,
    volumes: &Volumes,
) -> Vec<(&'a Pod, Placement)> {
    let mut queue: Vec<&Pod> = pending.into_iter().collect();
    queue.sort_by_cached_key(|p| queue_key(p));
    let mut scheduler = KubeScheduler::new(bound);
    queue
        .into_iter()
        .map(|pod| {
            let placement = scheduler.place(pod, nodes, volumes);
            if let Ok(node) = &placement {
                scheduler.bind(pod, node, nodes);
            }
            (pod, placement)
        })
        .collect()
}

/// A bound pod, as topology checks see it.
struct BoundPod {
    namespace: String,
    labels: BTreeMap<String, String>,
    node: String,
    anti_affinity: Vec<AffinityTerm>,
}

impl BoundPod {
    fn of(pod: &Pod, node: &str) -> Self {
        BoundPod {
            namespace: pod.namespace.clone(),
            labels: pod.labels.clone(),
            node: node.to_string(),
            anti_affinity: pod.pod_anti_affinity.clone(),
        }
    }
}

/// `(namespace, controlling owner)`: replicas of one workload usually schedule alike.
type WorkloadKey = (String, String);

/// What a round remembers about one workload's replicas: once one cannot be placed, an
/// identical one cannot either this round, and their topology is kept up to date bind by
/// bind instead of being recounted over every bound pod for each replica.
struct Replicas {
    /// The replica the entry was made for; a pod of the owner that differs gets its own.
    pod: Pod,
    topology: Topology,
    failed: Option<String>,
}

/// Whether two pods of one owner are placed alike: same labels, requests and constraints.
fn schedule_alike(a: &Pod, b: &Pod) -> bool {
    a.labels == b.labels
        && a.requests == b.requests
        && a.node_selector == b.node_selector
        && a.required_affinity == b.required_affinity
        && a.tolerations == b.tolerations
        && a.topology_spread == b.topology_spread
        && a.pod_affinity == b.pod_affinity
        && a.pod_anti_affinity == b.pod_anti_affinity
}

/// The scheduler's view during a round: what each node has bound and where the bound pods are.
pub struct KubeScheduler {
    used: BTreeMap<String, Resources>,
    bound: Vec<BoundPod>,
    replicas: BTreeMap<WorkloadKey, Replicas>,
}

impl KubeScheduler {
    /// Starts a round over the pods already bound (pods without a node and finished pods are
    /// skipped: they hold nothing, as the scheduler's cache leaves them out).
    pub fn new<'a>(bound: impl IntoIterator<Item = &'a Pod>) -> Self {
        let mut scheduler = KubeScheduler {
            used: BTreeMap::new(),
            bound: Vec::new(),
            replicas: BTreeMap::new(),
        };
        for pod in bound {
            if let Some(node) = pod.node_name.as_deref().filter(|_| !pod.terminal) {
                scheduler
                    .used
                    .entry(node.to_string())
                    .or_default()
                    .add(&pod.requests);
                scheduler.bound.push(BoundPod::of(pod, node));
            }
        }
        scheduler
    }

    /// Where the pod goes, or why nowhere. Nothing is recorded: call [`Self::bind`] once the
    /// pod is bound.
    pub fn place(&mut self, pod: &Pod, nodes: &BTreeMap<String, Node>, volumes: &Volumes) -> Placement {
        if nodes.is_empty() {
            return Err(NO_NODES.to_string());
        }
        if !pod.volume_claims.is_empty() {
            // Replicas with volumes differ by their volumes' zones, so they share no verdict.
            let mut constrained = pod.clone();
            volumes
                .constrain(&mut constrained)
                .map_err(|why| format!("0/{} nodes are available: {why}.", nodes.len()))?;
            let topology = Topology::for_pod(&constrained, nodes, &self.bound);
            return choose(&constrained, nodes, &self.used, &topology);
        }
        let Some(workload) = pod.owner_name.clone().map(|owner| (pod.namespace.clone(), owner)) else {
            let topology = Topology::for_pod(pod, nodes, &self.bound);
            return choose(pod, nodes, &self.used, &topology);
        };
        let fresh = || Replicas {
            pod: pod.clone(),
            topology: Topology::for_pod(pod, nodes, &self.bound),
            failed: None,
        };
        let replicas = match self.replicas.entry(workload) {
            Entry::Occupied(e) if schedule_alike(&e.get().pod, pod) => e.into_mut(),
            Entry::Occupied(mut e) => {
                e.insert(fresh());
                e.into_mut()
            }
            Entry::Vacant(e) => e.insert(fresh()),
        };
        if let Some(reason) = &replicas.failed {
            return Err(reason.clone());
        }
        let placement = choose(pod, nodes, &self.used, &replicas.topology);
        if let Err(reason) = &placement {
            replicas.failed = Some(reason.clone());
        }
        placement
    }

    /// Records the pod as bound to `node`.
    pub fn bind(&mut self, pod: &Pod, node: &str, nodes: &BTreeMap<String, Node>) {
        self.used.entry(node.to_string()).or_default().add(&pod.requests);
        if let Some(n) = nodes.get(node) {
            for r in self.replicas.values_mut() {
                r.topology.observe(pod, n);
            }
        }
        self.bound.push(BoundPod::of(pod, node));
    }
}

/// The least allocated node the pod fits, or the `FitError` message.
fn choose(
    pod: &Pod,
    nodes: &BTreeMap<String, Node>,
    used: &BTreeMap<String, Resources>,
    topology: &Topology,
) -> Placement {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<(i64, &str)> = None;
    let empty = Resources::new();
    for (name, node) in nodes {
        let used = used.get(name).unwrap_or(&empty);
        let misfits = misfits(pod, node, used, topology);
        if misfits.is_empty() {
            let score = least_allocated(&node.allocatable, used, &pod.requests);
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, name));
            }
        }
        for reason in misfits {
            *reasons.entry(reason).or_default() += 1;
        }
    }
    if let Some((_, name)) = best {
        return Ok(name.to_string());
    }
    let mut detail: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    detail.sort();
    let mut message = format!("0/{} nodes are available", nodes.len());
    if !detail.is_empty() {
        message.push_str(": ");
        message.push_str(&detail.join(", "));
    }
    message.push('.');
    Err(message)
}

/// Why the pod does not fit the node, in the scheduler's words; empty when it fits. A filter
/// that rejects the node stops the checks, as the real framework stops at the first failing
/// plugin.
fn misfits(pod: &Pod, node: &Node, used: &Resources, topology: &Topology) -> Vec<String> {
    let cordon = Taint::new(UNSCHEDULABLE_TAINT, None, TaintEffect::NoSchedule);
    if node.deleting || (node.unschedulable && !pod.tolerations.iter().any(|t| t.tolerates(&cordon))) {
        return vec!["node(s) were unschedulable".into()];
    }
    if let Some(t) = untolerated(&pod.tolerations, &node.taints) {
        let value = t.value.as_deref().unwrap_or_default();
        return vec![format!("node(s) had untolerated taint {{{}: {value}}}", t.key)];
    }
    if !pod.matches_node_labels(&node.labels) {
        return vec!["node(s) didn't match Pod's node affinity/selector".into()];
    }
    let mut free = node.allocatable.clone();
    free.sub(used);
    let short: Vec<String> = free
        .shortfalls(&pod.requests)
        .filter(|(_, want, _)| *want > 0)
        .map(|(resource, _, _)| {
            if resource == ResourceName::Pods.as_str() {
                "Too many pods".to_string()
            } else {
                format!("Insufficient {resource}")
            }
        })
        .collect();
    if !short.is_empty() {
        return short;
    }
    topology.admits(node).err().into_iter().collect()
}

/// `NodeResourcesFit`'s LeastAllocated score: the share of CPU and memory left free after
/// placing the pod, in percent, summed.
fn least_allocated(allocatable: &Resources, used: &Resources, request: &Resources) -> i64 {
    [ResourceName::Cpu, ResourceName::Memory]
        .into_iter()
        .filter(|r| allocatable.get(*r) > 0)
        .map(|r| {
            let free = allocatable.get(r) - used.get(r) - request.get(r);
            (i128::from(free) * 100 / i128::from(allocatable.get(r))) as i64
        })
        .sum()
}

/// One required spread constraint with its counts.
struct Spread {
    key: String,
    max_skew: i64,
    selector: LabelSelector,
    /// 1 if the pod matches its own selector (it will count once placed).
    self_match: i64,
    /// Matching pods per domain, over the domains of nodes the pod's node affinity allows.
    counts: BTreeMap<String, i64>,
    min_domains: Option<i32>,
    /// The global minimum the skew is measured from.
    min: i64,
}

impl Spread {
    fn update_min(&mut self) {
        let too_few_domains = self
            .min_domains
            .is_some_and(|m| (self.counts.len() as i64) < i64::from(m));
        self.min = if too_few_domains {
            0
        } else {
            self.counts.values().copied().min().unwrap_or(0)
        };
    }
}

/// A required pod (anti-)affinity term with the domains holding a pod it selects.
struct Term {
    term: AffinityTerm,
    domains: BTreeSet<String>,
}

/// A pod's topology constraints, resolved against the bound pods.
struct Topology {
    namespace: String,
    labels: BTreeMap<String, String>,
    spreads: Vec<Spread>,
    anti: Vec<Term>,
    /// With whether the pod matches its own term: the first replica of a self-affine group
    /// may go anywhere while no pod matches.
    affinity: Vec<(Term, bool)>,
    /// (topology key, domain) pairs where a bound pod's anti-affinity rejects this pod.
    rejected_by_others: Vec<(String, String)>,
}

impl Topology {
    fn for_pod(pod: &Pod, nodes: &BTreeMap<String, Node>, bound: &[BoundPod]) -> Topology {
        let domain = |node: &str, key: &str| nodes.get(node).and_then(|n| n.labels.get(key)).cloned();
        let term = |t: &AffinityTerm| Term {
            domains: bound
                .iter()
                .filter(|b| t.selects(&pod.namespace, &b.namespace, &b.labels))
                .filter_map(|b| domain(&b.node, &t.topology_key))
                .collect(),
            term: t.clone(),
        };
        Topology {
            namespace: pod.namespace.clone(),
            labels: pod.labels.clone(),
            spreads: pod
                .topology_spread
                .iter()
                .filter(|c| c.when_unsatisfiable == WhenUnsatisfiable::DoNotSchedule)
                .map(|c| spread(pod, c, nodes, bound))
                .collect(),
            anti: pod.pod_anti_affinity.iter().map(term).collect(),
            affinity: pod
                .pod_affinity
                .iter()
                .map(|t| (term(t), t.selects(&pod.namespace, &pod.namespace, &pod.labels)))
                .collect(),
            rejected_by_others: bound
                .iter()
                .flat_map(|b| {
                    b.anti_affinity
                        .iter()
                        .filter(|t| t.selects(&b.namespace, &pod.namespace, &pod.labels))
                        .filter_map(|t| Some((t.topology_key.clone(), domain(&b.node, &t.topology_key)?)))
                })
                .collect(),
        }
    }

    /// Takes into account a pod just bound to `node`.
    fn observe(&mut self, bound: &Pod, node: &Node) {
        for s in &mut self.spreads {
            if bound.namespace == self.namespace
                && s.selector.matches(&bound.labels)
                && let Some(count) = node.labels.get(&s.key).and_then(|d| s.counts.get_mut(d))
            {
                *count += 1;
                s.update_min();
            }
        }
        let terms = self
            .anti
            .iter_mut()
            .chain(self.affinity.iter_mut().map(|(t, _)| t));
        for t in terms {
            if t.term.selects(&self.namespace, &bound.namespace, &bound.labels)
                && let Some(d) = node.labels.get(&t.term.topology_key)
            {
                t.domains.insert(d.clone());
            }
        }
        for t in &bound.pod_anti_affinity {
            if t.selects(&bound.namespace, &self.namespace, &self.labels)
                && let Some(d) = node.labels.get(&t.topology_key)
            {
                self.rejected_by_others.push((t.topology_key.clone(), d.clone()));
            }
        }
    }

    fn admits(&self, node: &Node) -> Result<(), String> {
        for s in &self.spreads {
            let Some(d) = node.labels.get(&s.key) else {
                return Err(
                    "node(s) didn't match pod topology spread constraints (missing required label)".into(),
                );
            };
            let count = s.counts.get(d).copied().unwrap_or(0);
            if count + s.self_match - s.min > s.max_skew {
                return Err("node(s) didn't match pod topology spread constraints".into());
            }
        }
        for t in &self.anti {
            if node
                .labels
                .get(&t.term.topology_key)
                .is_some_and(|d| t.domains.contains(d))
            {
                return Err("node(s) didn't match pod anti-affinity rules".into());
            }
        }
        for (key, domain) in &self.rejected_by_others {
            if node.labels.get(key) == Some(domain) {
                return Err("node(s) didn't satisfy existing pods anti-affinity rules".into());
            }
        }
        for (t, self_match) in &self.affinity {
            let ok = match node.labels.get(&t.term.topology_key) {
                Some(d) => t.domains.contains(d) || (t.domains.is_empty() && *self_match),
                None => false,
            };
            if !ok {
                return Err("node(s) didn't match pod affinity rules".into());
            }
        }
        Ok(())
    }
}

fn spread(pod: &Pod, c: &TopologySpread, nodes: &BTreeMap<String, Node>, bound: &[BoundPod]) -> Spread {
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for node in nodes.values() {
        if let Some(d) = node.labels.get(&c.topology_key)
            && pod.matches_node_labels(&node.labels)
        {
            counts.entry(d.clone()).or_insert(0);
        }
    }
    for b in bound {
        if b.namespace != pod.namespace || !c.selector.matches(&b.labels) {
            continue;
        }
        let d = nodes.get(&b.node).and_then(|n| n.labels.get(&c.topology_key));
        if let Some(count) = d.and_then(|d| counts.get_mut(d)) {
            *count += 1;
        }
    }
    let mut s = Spread {
        key: c.topology_key.clone(),
        max_skew: i64::from(c.max_skew),
        selector: c.selector.clone(),
        self_match: i64::from(c.selector.matches(&pod.labels)),
        counts,
        min_domains: c.min_domains,
        min: 0,
    };
    s.update_min();
    s
}

#[cfg(test)]
mod tests {
    use nodewright_core::builders::pod;

    use super::*;

    fn node(name: &str, cpu: i64) -> Node {
        Node {
            name: name.into(),
            labels: BTreeMap::from([("kubernetes.io/hostname".to_string(), name.to_string())]),
            allocatable: Resources::new()
                .with(ResourceName::Cpu, cpu)
                .with(ResourceName::Memory, 8 << 30)
                .with(ResourceName::Pods, 110),
            ready: true,
            ..Node::default()
        }
    }

    fn nodes(list: &[Node]) -> BTreeMap<String, Node> {
        list.iter().map(|n| (n.name.clone(), n.clone())).collect()
    }

    fn owned(mut p: Pod, owner: &str) -> Pod {
        p.owner_kind = Some("ReplicaSet".into());
        p.owner_name = Some(owner.into());
        p
    }

    fn placements(
        pending: &[Pod],
        nodes: &BTreeMap<String, Node>,
        bound: &[Pod],
    ) -> Vec<(String, Placement)> {
        schedule(pending, nodes, bound, &Volumes::default())
            .into_iter()
            .map(|(p, placement)| (p.name.clone(), placement))
            .collect()
    }

    #[test]
    fn an_empty_cluster_has_the_schedulers_own_message() {
        let pending = [pod("web").build()];
        assert_eq!(
            placements(&pending, &BTreeMap::new(), &[]),
            [("web".to_string(), Err(NO_NODES.to_string()))]
        );
    }

    #[test]
    fn every_short_resource_of_every_node_is_counted() {
        let pending = [pod("big").cpu("4").memory("16Gi").build()];
        let [(_, placement)] = &placements(&pending, &nodes(&[node("n1", 2000), node("n2", 2000)]), &[])[..]
        else {
            panic!("one placement");
        };
        assert_eq!(
            placement,
            &Err("0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory.".to_string())
        );
    }

    #[test]
    fn queue_order_is_priority_then_age() {
        let mut low = pod("low").cpu("1500m").created_at(1).build();
        low.priority = 0;
        let mut high = pod("high").cpu("1500m").created_at(2).build();
        high.priority = 10;
        let placed = placements(&[low, high], &nodes(&[node("n1", 2000)]), &[]);
        assert_eq!(placed[0], ("high".to_string(), Ok("n1".to_string())));
        assert!(placed[1].1.is_err(), "{placed:?}");
    }

    #[test]
    fn pods_bound_before_the_round_hold_their_requests_unless_finished() {
        let cluster = nodes(&[node("n1", 2000), node("n2", 2000)]);
        let running = pod("running").cpu("1500m").on_node("n1").build();
        let mut finished = pod("finished").cpu("1500m").on_node("n2").build();
        finished.terminal = true;
        let pending = [pod("web").cpu("1").build()];
        assert_eq!(
            placements(&pending, &cluster, &[running, finished]),
            [("web".to_string(), Ok("n2".to_string()))]
        );
    }

    #[test]
    fn a_failed_replica_fails_its_twins_but_not_a_smaller_pod_of_the_same_owner() {
        let cluster = nodes(&[node("n1", 2000)]);
        let pending = [
            owned(pod("big-0").cpu("3").created_at(1).build(), "rs"),
            owned(pod("big-1").cpu("3").created_at(2).build(), "rs"),
            owned(pod("small").cpu("1").created_at(3).build(), "rs"),
        ];
        let placed = placements(&pending, &cluster, &[]);
        assert!(placed[0].1.is_err() && placed[1].1.is_err(), "{placed:?}");
        assert_eq!(placed[2], ("small".to_string(), Ok("n1".to_string())));
    }

    #[test]
    fn anti_affinity_of_a_pod_bound_this_round_keeps_the_next_one_away() {
        let cluster = nodes(&[node("n1", 4000), node("n2", 4000)]);
        let replica = |name: &str, at: i64| {
            owned(
                pod(name)
                    .label("app", "web")
                    .anti_affinity("kubernetes.io/hostname", &[("app", "web")])
                    .created_at(at)
                    .build(),
                "web",
            )
        };
        let placed = placements(
            &[replica("web-0", 1), replica("web-1", 2), replica("web-2", 3)],
            &cluster,
            &[],
        );
        assert_eq!(placed[0].1.as_deref(), Ok("n1"));
        assert_eq!(placed[1].1.as_deref(), Ok("n2"));
        assert_eq!(
            placed[2].1,
            Err("0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules.".to_string())
        );
    }
}
