//! Property tests: for random pods, daemonsets, NodePools, existing nodes, in-flight claims and
//! unavailable offerings over a slice of the embedded catalog, no plan breaks a hard constraint.
//!
//! The checker is independent of the solver: it works from the generated specs, the catalog's
//! labels, allocatable and offerings, and the plan alone, with its own label matching, resource
//! sums and topology counts. Spread and pod affinity are checked by replaying the placements
//! in the order the issue fixes (pods reserved by in-flight claims first, then largest CPU,
//! then memory, then creation), against the domains each pod could possibly use.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use nodewright_core::builders::{nodeclass, nodepool, pod};
use nodewright_core::catalog::{CapacityType, InstanceType};
use nodewright_core::labels;
use nodewright_core::nodeclaim::{ClaimState, LaunchedInstance, NodeClaim};
use nodewright_core::pod::{Node, Taint, TaintEffect};
use nodewright_core::ports::OfferingKey;
use nodewright_core::requirements::Operator;
use nodewright_core::resources::{ResourceName, Resources};
use nodewright_core::scheduler::{ExistingNode, Input, MAX_INSTANCE_TYPES, Plan, PoolInput, schedule};
use proptest::prelude::*;

const APPS: [&str; 5] = ["web", "api", "batch", "db", "free"];
/// Apps other pods' selectors may name; the last app is only for pods nothing selects.
const SELECTED: usize = 4;
const CPU_M: [i64; 6] = [100, 250, 500, 1000, 2000, 4000];
const MEM_MI: [i64; 5] = [128, 512, 1024, 4096, 16384];
const CATEGORIES: [&str; 7] = ["c", "m", "r", "t", "g", "x", "u"];
/// us-east-1e has few offerings: pools restricted to it exercise domains without capacity.
const ZONES: [&str; 4] = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1e"];
const TEAMS: [&str; 2] = ["blue", "green"];
const TAINT_KEY: &str = "dedicated";
const TEAM_KEY: &str = "team";
/// Families of the catalog slice: x86 and Graviton, burstable, NVMe and GPU types, and very
/// large memory types (up to 448 vCPU and 6 TiB) that a limit must keep claims from reserving.
const FAMILIES: [&str; 17] = [
    "c5", "c6g", "c6a", "c7i", "m5", "m6i", "m6g", "m7i", "r5", "r6i", "r7g", "t3", "t4g", "g4dn", "i3",
    "x2iedn", "u-6tb1",
];
/// Types existing nodes and in-flight claims run on.
const NODE_TYPES: [&str; 4] = ["m5.xlarge", "c6g.2xlarge", "r5.large", "g4dn.xlarge"];

fn catalog() -> Arc<Vec<InstanceType>> {
    static SLICE: OnceLock<Arc<Vec<InstanceType>>> = OnceLock::new();
    SLICE
        .get_or_init(|| {
            let full = nodewright_core::builders::pool_input(nodepool("x").build());
            Arc::new(
                full.instance_types
                    .iter()
                    .filter(|t| {
                        t.labels
                            .get(labels::INSTANCE_FAMILY)
                            .is_some_and(|f| FAMILIES.contains(&f.as_str()))
                    })
                    .cloned()
                    .collect(),
            )
        })
        .clone()
}

fn find_type(name: &str) -> InstanceType {
    match catalog().iter().find(|t| t.name == name) {
        Some(t) => t.clone(),
        None => panic!("{name} is in the catalog slice"),
    }
}

// ---------------------------------------------------------------------------------------------
// Specs: what the generator draws and the checker reads.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Zone,
    Host,
    CapacityType,
}

impl Key {
    fn label(self) -> &'static str {
        match self {
            Key::Zone => labels::ZONE,
            Key::Host => labels::HOSTNAME,
            Key::CapacityType => labels::CAPACITY_TYPE,
        }
    }
}

#[derive(Debug, Clone)]
enum NodeReq {
    ZoneIn(Vec<&'static str>),
    CategoryNotIn(&'static str),
    CpuGt(i64),
    CpuLt(i64),
    GenerationGt(i64),
    NvmeExists,
    NoGpu,
    CapacityTypeIn(&'static str),
    TeamIn(&'static str),
    TeamNotExists,
    /// `karpenter.sh/nodepool In [poolN]`: a pod choosing its pool by name.
    PoolIn(usize),
    PoolNotIn(usize),
}

#[derive(Debug, Clone)]
struct Spread {
    key: Key,
    max_skew: i32,
    hard: bool,
}

#[derive(Debug, Clone)]
struct PodSpec {
    cpu_m: i64,
    mem_mi: i64,
    gpu: bool,
    app: usize,
    arch: Option<&'static str>,
    /// OR of terms, each an AND.
    terms: Vec<Vec<NodeReq>>,
    tolerates: bool,
    spreads: Vec<Spread>,
    /// Required pod affinity: (key, selected app).
    affinity: Option<(Key, usize)>,
    anti: Option<(Key, usize)>,
    soft_anti: Option<usize>,
    port: Option<i32>,
}

#[derive(Debug, Clone)]
struct DaemonSpec {
    cpu_m: i64,
    mem_mi: i64,
    tolerates: bool,
    arch: Option<&'static str>,
}

#[derive(Debug, Clone, Copy)]
enum Limit {
    Cpu(i64),
    MemoryGi(i64),
    Nodes(i64),
}

#[derive(Debug, Clone)]
struct PoolSpec {
    spot: bool,
    on_demand: bool,
    categories: Vec<&'static str>,
    zones: Option<Vec<&'static str>>,
    tainted: bool,
    limit: Option<Limit>,
    weight: i32,
    team: Option<&'static str>,
    /// Zones of the node class's subnets: the catalog the pool plans from is offered only there.
    subnet_zones: Option<Vec<&'static str>>,
}

#[derive(Debug, Clone)]
struct BoundSpec {
    app: usize,
    cpu_m: i64,
    anti_host: bool,
    port: Option<i32>,
}

#[derive(Debug, Clone)]
struct NodeSpec {
    instance_type: &'static str,
    zone: &'static str,
    spot: bool,
    /// Index of the pool it belongs to (taken modulo the pools drawn), if any.
    pool: Option<usize>,
    tainted: bool,
    cordoned: bool,
    bound: Vec<BoundSpec>,
}

#[derive(Debug, Clone)]
struct ClaimSpec {
    instance_type: &'static str,
    zones: Vec<&'static str>,
    spot: bool,
    launched: bool,
    /// Pending pods (indices modulo the pods drawn) the claim was launched for.
    reserved: Vec<usize>,
}

#[derive(Debug, Clone)]
struct World {
    pods: Vec<PodSpec>,
    daemons: Vec<DaemonSpec>,
    pools: Vec<PoolSpec>,
    nodes: Vec<NodeSpec>,
    claims: Vec<ClaimSpec>,
    /// (type index into the slice, zone, spot).
    unavailable: Vec<(usize, &'static str, bool)>,
}

// ---------------------------------------------------------------------------------------------
// Strategies.

fn node_req() -> impl Strategy<Value = NodeReq> {
    prop_oneof![
        prop::sample::subsequence(ZONES.to_vec(), 1..=2).prop_map(NodeReq::ZoneIn),
        prop::sample::select(CATEGORIES.to_vec()).prop_map(NodeReq::CategoryNotIn),
        prop::sample::select(vec![2i64, 4, 8]).prop_map(NodeReq::CpuGt),
        prop::sample::select(vec![8i64, 16, 48]).prop_map(NodeReq::CpuLt),
        Just(NodeReq::GenerationGt(5)),
        Just(NodeReq::NvmeExists),
        Just(NodeReq::NoGpu),
        prop::sample::select(vec!["spot", "on-demand"]).prop_map(NodeReq::CapacityTypeIn),
        prop::sample::select(TEAMS.to_vec()).prop_map(NodeReq::TeamIn),
        Just(NodeReq::TeamNotExists),
        (0..3usize).prop_map(NodeReq::PoolIn),
        (0..3usize).prop_map(NodeReq::PoolNotIn),
    ]
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![Just(Key::Zone), Just(Key::Host), Just(Key::CapacityType)]
}

fn spread() -> impl Strategy<Value = Spread> {
    (key(), 1..=2i32, prop::bool::weighted(0.8)).prop_map(|(key, max_skew, hard)| Spread {
        key,
        max_skew,
        hard,
    })
}

fn pod_spec() -> impl Strategy<Value = PodSpec> {
    (
        (
            0..CPU_M.len(),
            0..MEM_MI.len(),
            prop::bool::weighted(0.05),
            0..SELECTED,
        ),
        prop::option::weighted(0.2, prop::sample::select(vec!["amd64", "arm64"])),
        prop::collection::vec(prop::collection::vec(node_req(), 1..=2), 0..=2),
        prop::bool::weighted(0.5),
        (
            prop::option::weighted(0.3, spread()),
            prop::option::weighted(0.1, spread()),
        ),
        (
            prop::option::weighted(0.12, (key(), 0..SELECTED)),
            prop::option::weighted(0.15, (key(), 0..SELECTED)),
            prop::option::weighted(0.05, 0..SELECTED),
            prop::option::weighted(0.08, prop::sample::select(vec![8080, 9090])),
        ),
    )
        .prop_map(
            |((cpu, mem, gpu, app), arch, terms, tolerates, (s1, s2), (affinity, anti, soft_anti, port))| {
                let spreads = s1.into_iter().chain(s2).collect();
                PodSpec {
                    cpu_m: CPU_M[cpu],
                    mem_mi: MEM_MI[mem],
                    gpu,
                    app,
                    arch,
                    terms,
                    tolerates,
                    spreads,
                    affinity,
                    anti,
                    soft_anti,
                    port,
                }
            },
        )
}

fn daemon_spec() -> impl Strategy<Value = DaemonSpec> {
    (
        prop::sample::select(vec![50i64, 100, 500]),
        prop::sample::select(vec![64i64, 256, 1024]),
        any::<bool>(),
        prop::option::weighted(0.3, prop::sample::select(vec!["amd64", "arm64"])),
    )
        .prop_map(|(cpu_m, mem_mi, tolerates, arch)| DaemonSpec {
            cpu_m,
            mem_mi,
            tolerates,
            arch,
        })
}

fn limit() -> impl Strategy<Value = Limit> {
    prop_oneof![
        prop::sample::select(vec![8i64, 32, 256, 1000]).prop_map(Limit::Cpu),
        prop::sample::select(vec![32i64, 48, 256]).prop_map(Limit::MemoryGi),
        (1..=4i64).prop_map(Limit::Nodes),
    ]
}

fn pool_spec() -> impl Strategy<Value = PoolSpec> {
    (
        prop::sample::select(vec![(true, true), (true, false), (false, true)]),
        prop::sample::subsequence(CATEGORIES.to_vec(), 1..=4),
        prop::option::weighted(0.25, prop::sample::subsequence(ZONES.to_vec(), 1..=3)),
        prop::bool::weighted(0.3),
        prop::option::weighted(0.3, limit()),
        0..3i32,
        prop::option::weighted(0.3, prop::sample::select(TEAMS.to_vec())),
        prop::option::weighted(0.25, prop::sample::subsequence(ZONES.to_vec(), 1..=3)),
    )
        .prop_map(
            |((spot, on_demand), categories, zones, tainted, limit, weight, team, subnet_zones)| PoolSpec {
                spot,
                on_demand,
                categories,
                zones,
                tainted,
                limit,
                weight,
                team,
                subnet_zones,
            },
        )
}

fn node_spec() -> impl Strategy<Value = NodeSpec> {
    let bound = (
        0..SELECTED,
        prop::sample::select(vec![250i64, 1000]),
        prop::bool::weighted(0.3),
    )
        .prop_flat_map(|(app, cpu_m, anti_host)| {
            prop::option::weighted(0.2, prop::sample::select(vec![8080, 9090])).prop_map(move |port| {
                BoundSpec {
                    app,
                    cpu_m,
                    anti_host,
                    port,
                }
            })
        });
    (
        prop::sample::select(NODE_TYPES.to_vec()),
        prop::sample::select(ZONES[..3].to_vec()),
        any::<bool>(),
        prop::option::weighted(0.6, 0..3usize),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.15),
        prop::collection::vec(bound, 0..=3),
    )
        .prop_map(
            |(instance_type, zone, spot, pool, tainted, cordoned, bound)| NodeSpec {
                instance_type,
                zone,
                spot,
                pool,
                tainted,
                cordoned,
                bound,
            },
        )
}

fn claim_spec() -> impl Strategy<Value = ClaimSpec> {
    (
        prop::sample::select(NODE_TYPES.to_vec()),
        prop::sample::subsequence(ZONES[..3].to_vec(), 1..=2),
        any::<bool>(),
        prop::bool::weighted(0.6),
        prop::collection::vec(0..64usize, 0..=3),
    )
        .prop_map(|(instance_type, zones, spot, launched, reserved)| ClaimSpec {
            instance_type,
            zones,
            spot,
            launched,
            reserved,
        })
}

/// A pod with nothing but requests: the kind the scheduler may repack freely.
fn free_pod_spec() -> impl Strategy<Value = PodSpec> {
    (0..CPU_M.len(), 0..MEM_MI.len(), any::<bool>()).prop_map(|(cpu, mem, tolerates)| PodSpec {
        cpu_m: CPU_M[cpu],
        mem_mi: MEM_MI[mem],
        gpu: false,
        app: SELECTED,
        arch: None,
        terms: Vec::new(),
        tolerates,
        spreads: Vec::new(),
        affinity: None,
        anti: None,
        soft_anti: None,
        port: None,
    })
}

fn world() -> impl Strategy<Value = World> {
    world_of(prop::collection::vec(pod_spec(), 1..40))
}

/// Many pods, most of them free, so that claims get packed again.
fn busy_world() -> impl Strategy<Value = World> {
    world_of(prop::collection::vec(
        prop_oneof![4 => free_pod_spec(), 1 => pod_spec()],
        100..400,
    ))
}

fn world_of(pods: impl Strategy<Value = Vec<PodSpec>>) -> impl Strategy<Value = World> {
    (
        pods,
        prop::collection::vec(daemon_spec(), 0..=2),
        prop::collection::vec(pool_spec(), 1..=3),
        prop::collection::vec(node_spec(), 0..=3),
        prop::collection::vec(claim_spec(), 0..=2),
        prop::collection::vec(
            (0..200usize, prop::sample::select(ZONES.to_vec()), any::<bool>()),
            0..=20,
        ),
    )
        .prop_map(|(pods, daemons, pools, nodes, claims, unavailable)| World {
            pods,
            daemons,
            pools,
            nodes,
            claims,
            unavailable,
        })
}

// ---------------------------------------------------------------------------------------------
// Building the scheduler's input from the specs.

fn pod_key(i: usize) -> String {
    format!("default/p{i}")
}

fn ct_name(spot: bool) -> &'static str {
    if spot { "spot" } else { "on-demand" }
}

fn build_pod(i: usize, s: &PodSpec) -> nodewright_core::pod::Pod {
    let app = APPS[s.app];
    let mut b = pod(&format!("p{i}"))
        .cpu(&format!("{}m", s.cpu_m))
        .memory(&format!("{}Mi", s.mem_mi))
        .label("app", app)
        .created_at(i as i64);
    if s.gpu {
        b = b.gpus(1);
    }
    if let Some(arch) = s.arch {
        b = b.node_selector(labels::ARCH, arch);
    }
    for (t, term) in s.terms.iter().enumerate() {
        for (r, req) in term.iter().enumerate() {
            let (key, op, values): (&str, Operator, Vec<String>) = match req {
                NodeReq::ZoneIn(z) => (
                    labels::ZONE,
                    Operator::In,
                    z.iter().map(|s| s.to_string()).collect(),
                ),
                NodeReq::CategoryNotIn(c) => {
                    (labels::INSTANCE_CATEGORY, Operator::NotIn, vec![c.to_string()])
                }
                NodeReq::CpuGt(n) => (labels::INSTANCE_CPU, Operator::Gt, vec![n.to_string()]),
                NodeReq::CpuLt(n) => (labels::INSTANCE_CPU, Operator::Lt, vec![n.to_string()]),
                NodeReq::GenerationGt(n) => (labels::INSTANCE_GENERATION, Operator::Gt, vec![n.to_string()]),
                NodeReq::NvmeExists => (labels::INSTANCE_LOCAL_NVME, Operator::Exists, vec![]),
                NodeReq::NoGpu => (labels::INSTANCE_GPU_COUNT, Operator::DoesNotExist, vec![]),
                NodeReq::CapacityTypeIn(c) => (labels::CAPACITY_TYPE, Operator::In, vec![c.to_string()]),
                NodeReq::TeamIn(team) => (TEAM_KEY, Operator::In, vec![team.to_string()]),
                NodeReq::TeamNotExists => (TEAM_KEY, Operator::DoesNotExist, vec![]),
                NodeReq::PoolIn(n) => (labels::NODEPOOL, Operator::In, vec![format!("pool{n}")]),
                NodeReq::PoolNotIn(n) => (labels::NODEPOOL, Operator::NotIn, vec![format!("pool{n}")]),
            };
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            b = if t > 0 && r == 0 {
                b.or_require(key, op, &values)
            } else {
                b.require(key, op, &values)
            };
        }
    }
    if s.tolerates {
        b = b.tolerate(TAINT_KEY, Some("true"), Some(TaintEffect::NoSchedule));
    }
    for sp in &s.spreads {
        b = if sp.hard {
            b.spread_with(sp.key.label(), sp.max_skew, &[("app", app)])
        } else {
            b.soft_spread(sp.key.label(), sp.max_skew)
        };
    }
    if let Some((key, target)) = s.affinity {
        b = b.affinity(key.label(), &[("app", APPS[target])]);
    }
    if let Some((key, target)) = s.anti {
        b = b.anti_affinity(key.label(), &[("app", APPS[target])]);
    }
    if let Some(target) = s.soft_anti {
        b = b.preferred_anti_affinity(10, labels::HOSTNAME, &[("app", APPS[target])]);
    }
    if let Some(port) = s.port {
        b = b.host_port(port);
    }
    b.build()
}

fn build_pool(i: usize, s: &PoolSpec) -> PoolInput {
    let mut cts = Vec::new();
    if s.spot {
        cts.push("spot");
    }
    if s.on_demand {
        cts.push("on-demand");
    }
    let mut b = nodepool(&format!("pool{i}"))
        .requirement(labels::CAPACITY_TYPE, Operator::In, &cts)
        .requirement(labels::INSTANCE_CATEGORY, Operator::In, &s.categories)
        .weight(s.weight);
    if let Some(zones) = &s.zones {
        b = b.requirement(labels::ZONE, Operator::In, zones);
    }
    if s.tainted {
        b = b.taint(TAINT_KEY, Some("true"), TaintEffect::NoSchedule);
    }
    match s.limit {
        Some(Limit::Cpu(n)) => b = b.limit("cpu", &n.to_string()),
        Some(Limit::MemoryGi(n)) => b = b.limit("memory", &format!("{n}Gi")),
        Some(Limit::Nodes(n)) => b = b.limit("nodes", &n.to_string()),
        None => {}
    }
    if let Some(team) = s.team {
        b = b.label(TEAM_KEY, team);
    }
    // The node class's catalog: only offerings in zones where it has a subnet.
    let instance_types = match &s.subnet_zones {
        None => catalog(),
        Some(zones) => Arc::new(
            catalog()
                .iter()
                .map(|t| {
                    let mut t = t.clone();
                    t.offerings.retain(|o| zones.contains(&o.zone.as_str()));
                    t
                })
                .filter(|t| !t.offerings.is_empty())
                .collect(),
        ),
    };
    PoolInput {
        nodepool: b.build(),
        nodeclass: nodeclass("default"),
        instance_types,
    }
}

fn node_name(i: usize) -> String {
    format!("node{i}")
}

fn claim_id(i: usize) -> String {
    format!("pool0-claim{i}")
}

fn tainted_with() -> Taint {
    Taint::new(TAINT_KEY, Some("true"), TaintEffect::NoSchedule)
}

fn build_input(w: &World) -> Input {
    let pending = w.pods.iter().enumerate().map(|(i, s)| build_pod(i, s)).collect();
    let daemonsets = w
        .daemons
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut b = pod(&format!("ds{i}"))
                .cpu(&format!("{}m", d.cpu_m))
                .memory(&format!("{}Mi", d.mem_mi))
                .daemonset();
            if d.tolerates {
                b = b.tolerate(TAINT_KEY, None, None);
            }
            if let Some(arch) = d.arch {
                b = b.node_selector(labels::ARCH, arch);
            }
            b.build()
        })
        .collect();
    let pools: Vec<PoolInput> = w
        .pools
        .iter()
        .enumerate()
        .map(|(i, s)| build_pool(i, s))
        .collect();
    let nodes = w
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let name = node_name(i);
            let t = find_type(n.instance_type);
            let mut node_labels = t.labels.clone();
            node_labels.insert(labels::HOSTNAME.into(), name.clone());
            node_labels.insert(labels::ZONE.into(), n.zone.into());
            node_labels.insert(labels::CAPACITY_TYPE.into(), ct_name(n.spot).into());
            if let Some(p) = n.pool.map(|p| p % w.pools.len()) {
                node_labels.insert(labels::NODEPOOL.into(), format!("pool{p}"));
                if let Some(team) = w.pools[p].team {
                    node_labels.insert(TEAM_KEY.into(), team.into());
                }
            }
            let pods = n
                .bound
                .iter()
                .enumerate()
                .map(|(j, bp)| {
                    let mut b = pod(&format!("bound{i}-{j}"))
                        .cpu(&format!("{}m", bp.cpu_m))
                        .label("app", APPS[bp.app])
                        .on_node(&name);
                    if bp.anti_host {
                        b = b.anti_affinity(labels::HOSTNAME, &[("app", APPS[bp.app])]);
                    }
                    if let Some(port) = bp.port {
                        b = b.host_port(port);
                    }
                    b.build()
                })
                .collect();
            ExistingNode {
                node: Node {
                    name,
                    labels: node_labels,
                    taints: if n.tainted {
                        vec![tainted_with()]
                    } else {
                        Vec::new()
                    },
                    allocatable: t.allocatable.clone(),
                    unschedulable: n.cordoned,
                    ready: true,
                    ..Node::default()
                },
                pods,
            }
        })
        .collect();
    let pool0 = &w.pools[0];
    let in_flight = w
        .claims
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let ct = if c.spot {
                CapacityType::Spot
            } else {
                CapacityType::OnDemand
            };
            let mut claim_labels = BTreeMap::new();
            if let Some(team) = pool0.team {
                claim_labels.insert(TEAM_KEY.to_string(), team.to_string());
            }
            NodeClaim {
                id: claim_id(i),
                nodepool: "pool0".into(),
                nodeclass: "default".into(),
                state: if c.launched {
                    ClaimState::Launched
                } else {
                    ClaimState::Launching
                },
                version: 1,
                instance_types: vec![c.instance_type.to_string()],
                zones: c.zones.iter().map(|z| z.to_string()).collect(),
                capacity_types: vec![ct],
                labels: claim_labels,
                taints: if pool0.tainted {
                    vec![tainted_with()]
                } else {
                    Vec::new()
                },
                startup_taints: Vec::new(),
                requests: Resources::new(),
                pods: c.reserved.iter().map(|r| pod_key(r % w.pods.len())).collect(),
                instance: c.launched.then(|| LaunchedInstance {
                    instance_id: format!("i-{i}"),
                    instance_type: c.instance_type.to_string(),
                    zone: c.zones[0].to_string(),
                    capacity_type: ct,
                    price: 0.1,
                }),
                node_name: None,
                created_at: 0,
                launched_at: c.launched.then_some(0),
                registered_at: None,
                initialized_at: None,
                reason: None,
                termination: None,
                disruption: Default::default(),
            }
        })
        .collect();
    let types = catalog();
    let unavailable = w
        .unavailable
        .iter()
        .map(|(t, zone, spot)| OfferingKey {
            instance_type: types[t % types.len()].name.clone(),
            zone: zone.to_string(),
            capacity_type: if *spot {
                CapacityType::Spot
            } else {
                CapacityType::OnDemand
            },
        })
        .collect();
    Input {
        pending,
        nodes,
        in_flight,
        daemonsets,
        pools,
        unavailable,
        now: 0,
        ..Input::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The checker.

type Labels = BTreeMap<String, String>;

/// The resources the checker tracks: cpu (m), memory (bytes), pods, GPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Res([i64; 4]);

impl Res {
    fn of(r: &Resources) -> Res {
        Res([r.cpu(), r.memory(), r.pods(), r.get(ResourceName::NvidiaGpu)])
    }

    fn pod(s: &PodSpec) -> Res {
        Res([s.cpu_m, s.mem_mi << 20, 1, i64::from(s.gpu)])
    }

    fn add(&mut self, o: Res) {
        for k in 0..4 {
            self.0[k] += o.0[k];
        }
    }

    fn within(&self, cap: &Res) -> bool {
        (0..4).all(|k| self.0[k] <= cap.0[k])
    }
}

fn label_int(l: &Labels, key: &str) -> Option<i64> {
    l.get(key).and_then(|v| v.parse().ok())
}

fn req_holds(r: &NodeReq, l: &Labels) -> bool {
    let get = |k: &str| l.get(k).map(String::as_str);
    match r {
        NodeReq::ZoneIn(zones) => get(labels::ZONE).is_some_and(|z| zones.contains(&z)),
        NodeReq::CategoryNotIn(c) => get(labels::INSTANCE_CATEGORY) != Some(c),
        NodeReq::CpuGt(n) => label_int(l, labels::INSTANCE_CPU).is_some_and(|v| v > *n),
        NodeReq::CpuLt(n) => label_int(l, labels::INSTANCE_CPU).is_some_and(|v| v < *n),
        NodeReq::GenerationGt(n) => label_int(l, labels::INSTANCE_GENERATION).is_some_and(|v| v > *n),
        NodeReq::NvmeExists => l.contains_key(labels::INSTANCE_LOCAL_NVME),
        NodeReq::NoGpu => !l.contains_key(labels::INSTANCE_GPU_COUNT),
        NodeReq::CapacityTypeIn(c) => get(labels::CAPACITY_TYPE) == Some(c),
        NodeReq::TeamIn(t) => get(TEAM_KEY) == Some(t),
        NodeReq::TeamNotExists => !l.contains_key(TEAM_KEY),
        NodeReq::PoolIn(n) => get(labels::NODEPOOL) == Some(&format!("pool{n}")),
        NodeReq::PoolNotIn(n) => get(labels::NODEPOOL) != Some(&format!("pool{n}")),
    }
}

fn term_holds(s: &PodSpec, term: &[NodeReq], l: &Labels) -> bool {
    s.arch
        .is_none_or(|a| l.get(labels::ARCH).map(String::as_str) == Some(a))
        && term.iter().all(|r| req_holds(r, l))
}

/// nodeSelector and required node affinity (an OR of terms).
fn affinity_holds(s: &PodSpec, l: &Labels) -> bool {
    if s.terms.is_empty() {
        term_holds(s, &[], l)
    } else {
        s.terms.iter().any(|t| term_holds(s, t, l))
    }
}

/// The terms a pod may have been placed under (all of them when it has none).
fn terms_of(s: &PodSpec) -> Vec<Vec<NodeReq>> {
    if s.terms.is_empty() {
        vec![Vec::new()]
    } else {
        s.terms.clone()
    }
}

/// One way a host can turn out: the node's labels and what pods can use on it.
#[derive(Debug, Clone)]
struct Variant {
    labels: Labels,
    room: Res,
    tainted: bool,
}

#[derive(Debug)]
struct Host {
    name: String,
    variants: Vec<Variant>,
    /// Pending pods placed here.
    placed: Vec<usize>,
    /// Bound pods: (app, anti-affine to its own app on the host, port, requests).
    bound: Vec<(usize, bool, Option<i32>)>,
}

impl Host {
    /// The value of a topology label if every variant agrees on it.
    fn settled(&self, key: Key) -> Option<String> {
        if key == Key::Host {
            return Some(self.name.clone());
        }
        let first = self.variants.first()?.labels.get(key.label())?;
        self.variants
            .iter()
            .all(|v| v.labels.get(key.label()) == Some(first))
            .then(|| first.clone())
    }
}

fn node_variant_labels(
    t: &InstanceType,
    zone: &str,
    ct: CapacityType,
    pool: &str,
    team: Option<&str>,
) -> Labels {
    let mut l = t.labels.clone();
    l.insert(labels::ZONE.into(), zone.into());
    l.insert(labels::CAPACITY_TYPE.into(), ct.as_str().into());
    l.insert(labels::NODEPOOL.into(), pool.into());
    if let Some(team) = team {
        l.insert(TEAM_KEY.into(), team.into());
    }
    l
}

/// Daemonset overhead on a node: every daemonset that tolerates its taint and selects it.
fn overhead(w: &World, l: &Labels, tainted: bool) -> Res {
    let mut r = Res::default();
    for d in &w.daemons {
        if tainted && !d.tolerates {
            continue;
        }
        if d.arch
            .is_some_and(|a| l.get(labels::ARCH).map(String::as_str) != Some(a))
        {
            continue;
        }
        r.add(Res([d.cpu_m, d.mem_mi << 20, 1, 0]));
    }
    r
}

fn minus(a: Res, b: Res) -> Res {
    let mut out = a;
    for k in 0..4 {
        out.0[k] -= b.0[k];
    }
    out
}

fn pool_allows(p: &PoolSpec, t: &InstanceType, zone: &str, ct: CapacityType) -> bool {
    let ct_ok = match ct {
        CapacityType::Spot => p.spot,
        CapacityType::OnDemand => p.on_demand,
    };
    ct_ok
        && p.zones.as_ref().is_none_or(|z| z.contains(&zone))
        && p.subnet_zones.as_ref().is_none_or(|z| z.contains(&zone))
        && t.labels
            .get(labels::INSTANCE_CATEGORY)
            .is_some_and(|c| p.categories.contains(&c.as_str()))
}

fn is_unavailable(input: &Input, t: &str, zone: &str, ct: CapacityType) -> bool {
    input
        .unavailable
        .iter()
        .any(|k| k.instance_type == t && k.zone == zone && k.capacity_type == ct)
}

fn check(w: &World, input: &Input, plan: &Plan) -> Result<(), String> {
    let types = catalog();
    let type_of = |name: &str| types.iter().find(|t| t.name == name);

    // Every pod placed exactly once, or unschedulable with a reason.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let placed_lists = plan
        .new_claims
        .iter()
        .map(|c| &c.pods)
        .chain(plan.existing.iter().map(|(_, p)| p))
        .chain(plan.in_flight.iter().map(|(_, p)| p));
    for list in placed_lists {
        for p in list {
            *seen.entry(p.clone()).or_default() += 1;
        }
    }
    for u in &plan.unschedulable {
        if u.reason.trim().is_empty() {
            return Err(format!("{} unschedulable without a reason", u.pod));
        }
        *seen.entry(u.pod.clone()).or_default() += 1;
    }
    if seen.len() != w.pods.len() {
        return Err(format!(
            "{} pods in the plan, {} pending",
            seen.len(),
            w.pods.len()
        ));
    }
    for i in 0..w.pods.len() {
        if seen.get(&pod_key(i)) != Some(&1) {
            return Err(format!(
                "{} appears {:?} times",
                pod_key(i),
                seen.get(&pod_key(i))
            ));
        }
    }
    let index_of = |key: &str| -> Result<usize, String> {
        key.strip_prefix("default/p")
            .and_then(|n| n.parse().ok())
            .filter(|i| *i < w.pods.len())
            .ok_or(format!("unknown pod {key}"))
    };

    // Hosts: existing nodes, in-flight claims, new claims, each with every way it can turn out.
    let mut hosts: Vec<Host> = Vec::new();
    for (i, n) in w.nodes.iter().enumerate() {
        let node = &input.nodes[i].node;
        let mut room = Res::of(&node.allocatable);
        for b in &n.bound {
            room = minus(room, Res([b.cpu_m, 0, 1, 0]));
        }
        hosts.push(Host {
            name: node.name.clone(),
            variants: vec![Variant {
                labels: node.labels.clone(),
                room,
                tainted: n.tainted,
            }],
            placed: Vec::new(),
            bound: n.bound.iter().map(|b| (b.app, b.anti_host, b.port)).collect(),
        });
        if let Some((_, pods)) = plan.existing.iter().find(|(name, _)| name == &node.name) {
            if n.cordoned {
                return Err(format!("pods placed on cordoned {}", node.name));
            }
            for p in pods {
                hosts[i].placed.push(index_of(p)?);
            }
        }
    }
    for (name, _) in &plan.existing {
        if !hosts.iter().any(|h| &h.name == name) {
            return Err(format!("plan uses unknown node {name}"));
        }
    }
    let pool0 = &w.pools[0];
    for (i, c) in w.claims.iter().enumerate() {
        let t = type_of(c.instance_type).ok_or("claim type")?;
        let ct = if c.spot {
            CapacityType::Spot
        } else {
            CapacityType::OnDemand
        };
        // A claim not launched yet may still come up in any of its zones.
        let zones: Vec<&str> = if c.launched {
            vec![c.zones[0]]
        } else {
            c.zones.clone()
        };
        let variants = zones
            .iter()
            .map(|z| {
                let l = node_variant_labels(t, z, ct, "pool0", pool0.team);
                let room = minus(Res::of(&t.allocatable), overhead(w, &l, pool0.tainted));
                Variant {
                    labels: l,
                    room,
                    tainted: pool0.tainted,
                }
            })
            .collect();
        let mut host = Host {
            name: claim_id(i),
            variants,
            placed: Vec::new(),
            bound: Vec::new(),
        };
        if let Some((_, pods)) = plan.in_flight.iter().find(|(id, _)| id == &claim_id(i)) {
            for p in pods {
                host.placed.push(index_of(p)?);
            }
        }
        hosts.push(host);
    }

    let mut pool_usage: BTreeMap<usize, ([i64; 3], usize)> = BTreeMap::new();
    for (ci, c) in plan.new_claims.iter().enumerate() {
        let pi: usize = c
            .nodepool
            .strip_prefix("pool")
            .and_then(|n| n.parse().ok())
            .filter(|i| *i < w.pools.len())
            .ok_or(format!("unknown pool {}", c.nodepool))?;
        let pool = &w.pools[pi];
        if c.instance_types.is_empty() || c.instance_types.len() > MAX_INSTANCE_TYPES {
            return Err(format!(
                "claim {ci} sends {} instance types",
                c.instance_types.len()
            ));
        }
        if c.pods.is_empty() {
            return Err(format!("claim {ci} has no pods"));
        }
        let chosen = &c.chosen;
        if !c.instance_types.contains(&chosen.instance_type)
            || !c.zones.contains(&chosen.zone)
            || !c.capacity_types.contains(&chosen.capacity_type)
        {
            return Err(format!("chosen {chosen:?} outside claim {ci}"));
        }
        if c.capacity_types.contains(&CapacityType::Spot) && chosen.capacity_type != CapacityType::Spot {
            return Err(format!("claim {ci} allows spot but chose {chosen:?}"));
        }
        if is_unavailable(input, &chosen.instance_type, &chosen.zone, chosen.capacity_type) {
            return Err(format!("claim {ci} chose an unavailable offering {chosen:?}"));
        }
        let mut variants = Vec::new();
        let mut reserve = [0i64; 3];
        let mut cheapest = f64::INFINITY;
        for name in &c.instance_types {
            let t = type_of(name).ok_or(format!("claim {ci}: {name} not in the catalog"))?;
            let mut offered = false;
            for o in &t.offerings {
                if !c.zones.contains(&o.zone) || !c.capacity_types.contains(&o.capacity_type) {
                    continue;
                }
                if !pool_allows(pool, t, &o.zone, o.capacity_type) {
                    return Err(format!(
                        "claim {ci}: {name} in {} {:?} outside {pool:?}",
                        o.zone, o.capacity_type
                    ));
                }
                if is_unavailable(input, name, &o.zone, o.capacity_type) {
                    continue;
                }
                offered = true;
                if o.capacity_type == chosen.capacity_type {
                    cheapest = cheapest.min(o.price);
                }
                let l = node_variant_labels(t, &o.zone, o.capacity_type, &c.nodepool, pool.team);
                for (k, v) in &c.labels {
                    if l.get(k).is_some_and(|have| have != v) {
                        return Err(format!("claim {ci} labels {k}={v} but {name} has {:?}", l.get(k)));
                    }
                }
                let room = minus(Res::of(&t.allocatable), overhead(w, &l, pool.tainted));
                variants.push(Variant {
                    labels: l,
                    room,
                    tainted: pool.tainted,
                });
            }
            if !offered {
                return Err(format!(
                    "claim {ci}: {name} has no available offering in its zones"
                ));
            }
            reserve[0] = reserve[0].max(t.capacity.cpu());
            reserve[1] = reserve[1].max(t.capacity.memory());
        }
        reserve[2] = 1;
        if (chosen.price - cheapest).abs() > 1e-9 {
            return Err(format!("claim {ci} chose {chosen:?}, cheapest is {cheapest}"));
        }
        let entry = pool_usage.entry(pi).or_default();
        for (total, r) in entry.0.iter_mut().zip(reserve) {
            *total += r;
        }
        entry.1 += 1;
        let mut host = Host {
            name: format!("new{ci}"),
            variants,
            placed: Vec::new(),
            bound: Vec::new(),
        };
        for p in &c.pods {
            host.placed.push(index_of(p)?);
        }
        hosts.push(host);
    }

    // NodePool limits: what exists, what is in flight and every new claim at its largest type.
    for (pi, (new, _)) in &pool_usage {
        let Some(limit) = w.pools[*pi].limit else { continue };
        let mut used = *new;
        let name = format!("pool{pi}");
        for n in &input.nodes {
            if n.node.labels.get(labels::NODEPOOL) == Some(&name) {
                let t = type_of(&n.node.labels[labels::INSTANCE_TYPE]).ok_or("node type")?;
                used[0] += t.capacity.cpu();
                used[1] += t.capacity.memory();
                used[2] += 1;
            }
        }
        for c in input.in_flight.iter().filter(|c| c.nodepool == name) {
            let t = type_of(&c.instance_types[0]).ok_or("claim type")?;
            used[0] += t.capacity.cpu();
            used[1] += t.capacity.memory();
            used[2] += 1;
        }
        let (k, cap) = match limit {
            Limit::Cpu(n) => (0, n * 1000),
            Limit::MemoryGi(n) => (1, n << 30),
            Limit::Nodes(n) => (2, n),
        };
        if used[k] > cap {
            return Err(format!("pool{pi} uses {used:?} over its limit {limit:?}"));
        }
    }

    // Per host: node affinity, taints, resources, host ports, hostname anti-affinity.
    let mut host_of = vec![usize::MAX; w.pods.len()];
    for (h, host) in hosts.iter().enumerate() {
        if host.placed.is_empty() {
            continue;
        }
        for v in &host.variants {
            let mut used = Res::default();
            for &p in &host.placed {
                let s = &w.pods[p];
                if !affinity_holds(s, &v.labels) {
                    return Err(format!(
                        "p{p} on {} breaks its node affinity: {:?}",
                        host.name, s.terms
                    ));
                }
                if v.tainted && !s.tolerates {
                    return Err(format!("p{p} on {} does not tolerate its taint", host.name));
                }
                used.add(Res::pod(s));
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
        let mut ports: BTreeSet<i32> = host.bound.iter().filter_map(|b| b.2).collect();
        for port in host.placed.iter().filter_map(|p| w.pods[*p].port) {
            if !ports.insert(port) {
                return Err(format!("host port {port} twice on {}", host.name));
            }
        }
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
        for &p in &host.placed {
            host_of[p] = h;
        }
    }

    // Zone and capacity-type keys need a settled domain wherever a hard term counts the pod.
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

    // Zone anti-affinity, symmetric, on the final state.
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

    // Replay in the scheduler's order for spread and pod affinity.
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
    // (key, domain, app) → pods counted so far; bound pods count from the start.
    let mut counts: BTreeMap<(u8, String, usize), i64> = BTreeMap::new();
    let mut totals: BTreeMap<usize, i64> = BTreeMap::new();
    let domain_of = |h: usize, key: Key| hosts[h].settled(key);
    let bump = |counts: &mut BTreeMap<(u8, String, usize), i64>, h: usize, app: usize| {
        for key in [Key::Zone, Key::Host, Key::CapacityType] {
            if let Some(d) = domain_of(h, key) {
                *counts.entry((key as u8, d, app)).or_default() += 1;
            }
        }
    };
    for (h, host) in hosts.iter().enumerate() {
        for b in &host.bound {
            bump(&mut counts, h, b.0);
            *totals.entry(b.0).or_default() += 1;
        }
    }
    // The scheduler tries a pod that fits nowhere again after the others (its affinity target
    // may come later), so the replay does too: a pod whose check fails waits for the next pass,
    // and the plan is wrong only when a pass places none of the waiting pods.
    let check = |p: usize,
                 h: usize,
                 counts: &BTreeMap<(u8, String, usize), i64>,
                 totals: &BTreeMap<usize, i64>|
     -> Result<(), String> {
        let s = &w.pods[p];
        let count = |key: Key, d: &str, app: usize| {
            counts.get(&(key as u8, d.to_string(), app)).copied().unwrap_or(0)
        };
        for sp in s.spreads.iter().filter(|sp| sp.hard) {
            let Some(here) = domain_of(h, sp.key) else {
                continue;
            };
            let mine = count(sp.key, &here, s.app) + 1;
            let ok = if sp.key == Key::Host {
                // A new node is always a domain with none: the minimum is 0.
                mine <= i64::from(sp.max_skew)
            } else {
                // Any term the host satisfies may be the one the pod was placed under.
                terms_of(s)
                    .iter()
                    .filter(|t| hosts[h].variants.iter().all(|v| term_holds(s, t, &v.labels)))
                    .any(|t| {
                        let domains = eligible(w, input, &hosts, s, t, sp.key);
                        let min = domains
                            .iter()
                            .chain([&here])
                            .map(|d| count(sp.key, d, s.app))
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
        if let Some((key, target)) = s.affinity {
            let here = domain_of(h, key).ok_or("affinity domain unsettled")?;
            let total = totals.get(&target).copied().unwrap_or(0);
            let ok = if total > 0 {
                count(key, &here, target) > 0
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
    };
    let mut waiting: Vec<usize> = order.into_iter().filter(|p| host_of[*p] != usize::MAX).collect();
    while !waiting.is_empty() {
        let mut first_error = None;
        let before = waiting.len();
        waiting.retain(|&p| {
            let h = host_of[p];
            match check(p, h, &counts, &totals) {
                Ok(()) => {
                    bump(&mut counts, h, w.pods[p].app);
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

    // A pod with nothing to satisfy but its requests is never left out while a pool without
    // limits that it tolerates offers a type with room for it.
    for u in &plan.unschedulable {
        let p = index_of(&u.pod)?;
        let s = &w.pods[p];
        let unconstrained = s.arch.is_none()
            && s.terms.is_empty()
            && s.spreads.is_empty()
            && s.affinity.is_none()
            && s.anti.is_none()
            && s.soft_anti.is_none()
            && s.port.is_none();
        if !unconstrained {
            continue;
        }
        let room_somewhere = w.pools.iter().enumerate().any(|(pi, pool)| {
            pool.limit.is_none()
                && (!pool.tainted || s.tolerates)
                && types.iter().any(|t| {
                    t.offerings.iter().any(|o| {
                        if !pool_allows(pool, t, &o.zone, o.capacity_type)
                            || is_unavailable(input, &t.name, &o.zone, o.capacity_type)
                        {
                            return false;
                        }
                        let l =
                            node_variant_labels(t, &o.zone, o.capacity_type, &format!("pool{pi}"), pool.team);
                        Res::pod(s).within(&minus(Res::of(&t.allocatable), overhead(w, &l, pool.tainted)))
                    })
                })
        });
        // Other pods' anti-affinity may still repel it from every node.
        let repelled = w.pods.iter().any(|o| o.anti.is_some_and(|(_, a)| a == s.app))
            || w.nodes
                .iter()
                .any(|n| n.bound.iter().any(|b| b.anti_host && b.app == s.app));
        if room_somewhere && !repelled {
            return Err(format!("p{p} has no constraints and fits, yet: {}", u.reason));
        }
    }
    if plan.cost_per_hour + 1e-9 < plan.lower_bound_per_hour {
        return Err(format!(
            "cost {} below the lower bound {}",
            plan.cost_per_hour, plan.lower_bound_per_hour
        ));
    }
    if plan.new_claims.is_empty() && plan.cost_per_hour.is_sign_negative() {
        return Err("an empty plan costs -0".into());
    }
    Ok(())
}

impl Spread {
    /// Every generated spread selects the pod's own app.
    fn app_selected(&self, s: &PodSpec) -> usize {
        s.app
    }
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn no_plan_breaks_a_hard_constraint(world in world()) {
        let input = build_input(&world);
        let plan = schedule(&input);
        if let Err(violation) = check(&world, &input, &plan) {
            return Err(TestCaseError::fail(format!("{violation}\nplan: {plan:#?}")));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn no_plan_for_many_mostly_unconstrained_pods_breaks_a_hard_constraint(world in busy_world()) {
        let input = build_input(&world);
        let plan = schedule(&input);
        if let Err(violation) = check(&world, &input, &plan) {
            return Err(TestCaseError::fail(format!("{violation}\nplan: {plan:#?}")));
        }
    }
}
