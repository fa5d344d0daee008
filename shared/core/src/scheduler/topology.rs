//! Topology bookkeeping for spread constraints and pod (anti-)affinity.
//!
//! A *group* is one distinct (topology key, label selector, namespace scope). For each group we
//! count, per domain, the pods that match its selector, and the pods that carry it as a required
//! anti-affinity term (so that an incoming pod matching the selector is kept away from them, as
//! the kube-scheduler does symmetrically).

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use crate::labels;
use crate::pod::{AffinityTerm, LabelSelector, Pod};
use crate::requirements::Requirements;

/// What a topology key partitions nodes by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum TopoKey {
    Zone,
    Hostname,
    CapacityType,
    Label(String),
}

impl TopoKey {
    /// The label key, as the pod wrote it.
    pub(super) fn label(&self) -> &str {
        match self {
            TopoKey::Zone => labels::ZONE,
            TopoKey::Hostname => labels::HOSTNAME,
            TopoKey::CapacityType => labels::CAPACITY_TYPE,
            TopoKey::Label(k) => k,
        }
    }

    pub(super) fn of(key: &str) -> TopoKey {
        match key {
            labels::ZONE => TopoKey::Zone,
            labels::HOSTNAME => TopoKey::Hostname,
            labels::CAPACITY_TYPE => TopoKey::CapacityType,
            other => TopoKey::Label(other.to_string()),
        }
    }
}

/// Which namespaces a group's selector looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum NsScope {
    All,
    List(Vec<String>),
}

impl NsScope {
    fn includes(&self, ns: &str) -> bool {
        match self {
            NsScope::All => true,
            NsScope::List(list) => list.iter().any(|n| n == ns),
        }
    }

    /// The namespaces a term covers (see [`AffinityTerm::selects_namespace`]), of those whose
    /// labels are known.
    pub(super) fn for_term(
        term: &AffinityTerm,
        own_ns: &str,
        namespace_labels: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> NsScope {
        if term
            .namespace_selector
            .as_ref()
            .is_some_and(|s| s.requirements.is_empty())
        {
            return NsScope::All;
        }
        let mut list = term.namespaces.clone();
        if let Some(sel) = &term.namespace_selector {
            list.extend(
                namespace_labels
                    .iter()
                    .filter(|(_, labels)| sel.matches(labels))
                    .map(|(ns, _)| ns.clone()),
            );
        } else if list.is_empty() {
            list.push(own_ns.to_string());
        }
        list.sort();
        list.dedup();
        NsScope::List(list)
    }
}

/// Domain ids are small dense integers chosen by us, not input: a multiplicative hash is
/// enough, and SipHash on every count lookup was a tenth of a large round.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct DomainHasher(u64);

impl Hasher for DomainHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = (u64::from(n) ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type DomainCounts = HashMap<u32, u32, BuildHasherDefault<DomainHasher>>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    key: TopoKey,
    selector: Requirements,
    scope: NsScope,
}

#[derive(Debug)]
pub(super) struct Group {
    pub key: TopoKey,
    selector: LabelSelector,
    scope: NsScope,
    /// Domain → pods matching the selector.
    matching: DomainCounts,
    /// Domain → pods carrying this group as a required anti-affinity term.
    owners: DomainCounts,
    pub total: u32,
    pub has_owners: bool,
    /// Domains with a matching pod, and with an owner, as bitsets: a pod that must avoid them
    /// skips 64 hosts per word instead of looking each one up.
    nonzero: Vec<u64>,
    owned: Vec<u64>,
}

fn set_bit(bits: &mut Vec<u64>, i: u32) {
    let w = i as usize / 64;
    if bits.len() <= w {
        bits.resize(w + 1, 0);
    }
    bits[w] |= 1 << (i % 64);
}

/// ORs `bits` into `into`, growing it as needed.
pub(super) fn or_into(into: &mut Vec<u64>, bits: &[u64]) {
    if into.len() < bits.len() {
        into.resize(bits.len(), 0);
    }
    for (a, b) in into.iter_mut().zip(bits) {
        *a |= b;
    }
}

impl Group {
    /// Domains holding a pod the selector matches.
    pub(super) fn nonzero(&self) -> &[u64] {
        &self.nonzero
    }

    /// Domains holding a pod that carries this group as a required anti-affinity term.
    pub(super) fn owned(&self) -> &[u64] {
        &self.owned
    }

    pub(super) fn count(&self, domain: u32) -> u32 {
        self.matching.get(&domain).copied().unwrap_or(0)
    }

    pub(super) fn owners_in(&self, domain: u32) -> u32 {
        self.owners.get(&domain).copied().unwrap_or(0)
    }
}

/// All groups of a round.
#[derive(Debug, Default)]
pub(super) struct Topology {
    pub groups: Vec<Group>,
    index: HashMap<GroupKey, u32>,
    /// (namespace, labels) → groups whose selector matches.
    matches_cache: HashMap<(String, BTreeMap<String, String>), Vec<u32>>,
    /// Interned label values for `TopoKey::Label` domains.
    values: HashMap<String, u32>,
}

impl Topology {
    pub(super) fn group(&mut self, key: TopoKey, selector: &LabelSelector, scope: NsScope) -> u32 {
        let gk = GroupKey {
            key: key.clone(),
            selector: selector.requirements.clone(),
            scope: scope.clone(),
        };
        if let Some(id) = self.index.get(&gk) {
            return *id;
        }
        let id = self.groups.len() as u32;
        self.groups.push(Group {
            key,
            selector: selector.clone(),
            scope,
            matching: DomainCounts::default(),
            owners: DomainCounts::default(),
            total: 0,
            has_owners: false,
            nonzero: Vec::new(),
            owned: Vec::new(),
        });
        self.index.insert(gk, id);
        // Groups are all registered before any pod is counted, so the cache is still empty.
        debug_assert!(self.matches_cache.is_empty());
        id
    }

    pub(super) fn value_id(&mut self, value: &str) -> u32 {
        let next = self.values.len() as u32;
        *self.values.entry(value.to_string()).or_insert(next)
    }

    /// Groups whose selector selects a pod with these labels in this namespace.
    pub(super) fn matching_groups(&mut self, pod: &Pod) -> Vec<u32> {
        let key = (pod.namespace.clone(), pod.labels.clone());
        if let Some(found) = self.matches_cache.get(&key) {
            return found.clone();
        }
        let found: Vec<u32> = self
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.scope.includes(&pod.namespace) && g.selector.matches(&pod.labels))
            .map(|(i, _)| i as u32)
            .collect();
        self.matches_cache.insert(key, found.clone());
        found
    }

    pub(super) fn record_match(&mut self, group: u32, domain: u32) {
        let g = &mut self.groups[group as usize];
        *g.matching.entry(domain).or_insert(0) += 1;
        g.total += 1;
        set_bit(&mut g.nonzero, domain);
    }

    pub(super) fn record_owner(&mut self, group: u32, domain: u32) {
        let g = &mut self.groups[group as usize];
        *g.owners.entry(domain).or_insert(0) += 1;
        g.has_owners = true;
        set_bit(&mut g.owned, domain);
    }
}
