//! The simulated kube-scheduler: binds pending pods to nodes where they fit and marks the rest
//! Unschedulable — only then does the provisioner see them, as with a real cluster.
//!
//! It checks what the default scheduler's filters check for the pods a scenario makes:
//! unschedulable (cordoned or deleting) nodes, taints (NoSchedule and NoExecute), nodeSelector
//! and required node affinity, resources against allocatable minus the bound pods, required
//! topology spread (`DoNotSchedule`; nodes failing the pod's node affinity are not counted as
//! domains, taints are ignored) and required pod affinity and anti-affinity (including the
//! anti-affinity of pods already bound). It approximates the rest: among feasible nodes it
//! picks the least allocated (CPU and memory, as `NodeResourcesFit`'s default scoring),
//! ignoring the other scores (`ScheduleAnyway` spread, preferred affinities, image locality);
//! host ports, volumes and preemption are not modelled. The queue is ordered by priority, then
//! creation time.

use std::collections::{BTreeMap, BTreeSet};

use nodewright_core::pod::{
    AffinityTerm, LabelSelector, Millis, Node, Pod, TopologySpread, WhenUnsatisfiable, untolerated,
};
use nodewright_core::ports::Clock;
use nodewright_core::resources::{ResourceName, Resources};

use crate::cluster::{ClusterState, PodStatus, SimCluster};

/// What one pass of the kube-scheduler did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchedulingPass {
    /// Pods bound in this pass, with their node.
    pub bound: Vec<(String, String)>,
    /// Pods marked Unschedulable in this pass that were not before: the admission webhook
    /// fires for these.
    pub newly_unschedulable: Vec<String>,
    /// Pods Unschedulable after the pass.
    pub unschedulable: usize,
}

/// A bound pod, as topology checks see it.
struct BoundPod {
    namespace: String,
    labels: BTreeMap<String, String>,
    node: String,
    anti_affinity: Vec<AffinityTerm>,
}

/// Replicas of one workload are identical, so they share their checks: `(namespace, owner)`.
type WorkloadKey = (String, String);

impl SimCluster {
    /// Runs one scheduling pass over every pod not yet bound, if anything changed since the
    /// last pass (a new pod, node, deleted pod or removed taint); otherwise nothing is retried,
    /// as the real scheduler parks unschedulable pods until a cluster event.
    pub fn run_scheduler(&self) -> SchedulingPass {
        let now = self.clock.now();
        let mut state = self.state();
        let mut pass = SchedulingPass::default();
        // Every change to pods or nodes marks the state dirty, so the count below is current
        // whenever nothing is to be done.
        if state.dirty {
            state.dirty = false;
            schedule(&mut state, now, &mut pass);
            state.unschedulable = state
                .pods
                .values()
                .filter(|e| matches!(e.status, PodStatus::Unschedulable { .. }))
                .count();
        }
        pass.unschedulable = state.unschedulable;
        pass
    }
}

fn schedule(state: &mut ClusterState, now: Millis, pass: &mut SchedulingPass) {
    let mut used: BTreeMap<String, Resources> = BTreeMap::new();
    for e in state.pods.values() {
        if let Some(node) = &e.pod.node_name {
            used.entry(node.clone()).or_default().add(&e.pod.requests);
        }
    }
    let mut queue: Vec<(i32, Millis, String)> = state
        .pods
        .iter()
        .filter(|(_, e)| e.status != PodStatus::Bound && !e.pod.is_daemon())
        .map(|(k, e)| (e.pod.priority, e.pod.created_at, k.clone()))
        .collect();
    if queue.is_empty() {
        return;
    }
    queue.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut bound: Vec<BoundPod> = state
        .pods
        .values()
        .filter_map(|e| {
            Some(BoundPod {
                namespace: e.pod.namespace.clone(),
                labels: e.pod.labels.clone(),
                node: e.pod.node_name.clone()?,
                anti_affinity: e.pod.pod_anti_affinity.clone(),
            })
        })
        .collect();
    // Once one replica cannot be placed, none can this pass; their topology is kept up to date
    // bind by bind instead of being recounted over every bound pod for each replica.
    let mut failed: BTreeMap<WorkloadKey, String> = BTreeMap::new();
    let mut topologies: BTreeMap<WorkloadKey, Topology> = BTreeMap::new();

    for (_, _, key) in queue {
        let Some(mut pod) = state.pods.get(&key).map(|e| e.pod.clone()) else {
            continue;
        };
        // Replicas with volumes differ by their volumes' zones, so they do not share a verdict.
        let workload = pod
            .owner_name
            .clone()
            .filter(|_| pod.volume_claims.is_empty())
            .map(|owner| (pod.namespace.clone(), owner));
        // The VolumeBinding filter: a bound volume's node affinity, a class's topologies; an
        // unbound Immediate claim keeps the pod pending.
        let volumes = match pod.volume_claims.is_empty() {
            true => Ok(()),
            false => state
                .volumes
                .constrain(&mut pod)
                .map_err(|why| format!("0/{} nodes are available: {why}.", state.nodes.len())),
        };
        let outcome = match (volumes, workload.as_ref().and_then(|w| failed.get(w))) {
            (Err(reason), _) => Err(reason),
            (Ok(()), Some(reason)) => Err(reason.clone()),
            (Ok(()), None) => {
                let fresh;
                let topology = match &workload {
                    Some(w) => topologies
                        .entry(w.clone())
                        .or_insert_with(|| Topology::for_pod(&pod, &state.nodes, &bound)),
                    None => {
                        fresh = Topology::for_pod(&pod, &state.nodes, &bound);
                        &fresh
                    }
                };
                place(&pod, &state.nodes, &used, topology)
            }
        };
        match outcome {
            Ok(node) => {
                used.entry(node.clone()).or_default().add(&pod.requests);
                if let Some(n) = state.nodes.get(&node) {
                    for t in topologies.values_mut() {
                        t.observe(&pod, n);
                    }
                }
                bound.push(BoundPod {
                    namespace: pod.namespace.clone(),
                    labels: pod.labels.clone(),
                    node: node.clone(),
                    anti_affinity: pod.pod_anti_affinity.clone(),
                });
                state.bind(&key, &node, now);
                pass.bound.push((key, node));
            }
            Err(reason) => {
                if let Some(w) = workload {
                    failed.insert(w, reason.clone());
                }
                if let Some(entry) = state.pods.get_mut(&key) {
                    if !matches!(entry.status, PodStatus::Unschedulable { .. }) {
                        pass.newly_unschedulable.push(key.clone());
                    }
                    entry.status = PodStatus::Unschedulable { reason };
                }
            }
        }
    }
}

/// The least allocated feasible node, or the scheduler's message saying why there is none.
fn place(
    pod: &Pod,
    nodes: &BTreeMap<String, Node>,
    used: &BTreeMap<String, Resources>,
    topology: &Topology,
) -> Result<String, String> {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<(i64, &str)> = None;
    let empty = Resources::new();
    for (name, node) in nodes {
        let used = used.get(name).unwrap_or(&empty);
        match feasible(pod, node, used, topology) {
            Err(reason) => *reasons.entry(reason).or_default() += 1,
            Ok(()) => {
                let score = least_allocated(&node.allocatable, used, &pod.requests);
                if best.is_none_or(|(s, _)| score > s) {
                    best = Some((score, name));
                }
            }
        }
    }
    if let Some((_, name)) = best {
        return Ok(name.to_string());
    }
    let detail: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    let mut message = format!("0/{} nodes are available", nodes.len());
    if !detail.is_empty() {
        message.push_str(": ");
        message.push_str(&detail.join(", "));
    }
    message.push('.');
    Err(message)
}

fn feasible(pod: &Pod, node: &Node, used: &Resources, topology: &Topology) -> Result<(), String> {
    if node.unschedulable || node.deleting {
        return Err("node(s) were unschedulable".into());
    }
    if let Some(t) = untolerated(&pod.tolerations, &node.taints) {
        return Err(format!("node(s) had untolerated taint {{{t}}}"));
    }
    if !pod.matches_node_labels(&node.labels) {
        return Err("node(s) didn't match Pod's node affinity/selector".into());
    }
    let mut free = node.allocatable.clone();
    free.sub(used);
    if let Some((resource, _, _)) = free.first_shortfall(&pod.requests) {
        return Err(if resource == ResourceName::Pods.as_str() {
            "Too many pods".into()
        } else {
            format!("Insufficient {resource}")
        });
    }
    topology.admits(node)
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
