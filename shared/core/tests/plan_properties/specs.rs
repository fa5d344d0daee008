//! Specs: what the generators draw and the checker reads, over a slice of the embedded
//! catalog.

use std::sync::{Arc, OnceLock};

use nodewright_core::builders::nodepool;
use nodewright_core::catalog::InstanceType;
use nodewright_core::labels;

pub const APPS: [&str; 5] = ["web", "api", "batch", "db", "free"];
/// Apps other pods' selectors may name; the last app is only for pods nothing selects.
pub const SELECTED: usize = 4;
pub const CPU_M: [i64; 6] = [100, 250, 500, 1000, 2000, 4000];
pub const MEM_MI: [i64; 5] = [128, 512, 1024, 4096, 16384];
pub const CATEGORIES: [&str; 7] = ["c", "m", "r", "t", "g", "x", "u"];
/// us-east-1e has few offerings: pools restricted to it exercise domains without capacity.
pub const ZONES: [&str; 4] = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1e"];
pub const TEAMS: [&str; 2] = ["blue", "green"];
pub const TAINT_KEY: &str = "dedicated";
pub const TEAM_KEY: &str = "team";
/// Families of the catalog slice: x86 and Graviton, burstable, NVMe and GPU types, and very
/// large memory types (up to 448 vCPU and 6 TiB) that a limit must keep claims from reserving.
pub const FAMILIES: [&str; 17] = [
    "c5", "c6g", "c6a", "c7i", "m5", "m6i", "m6g", "m7i", "r5", "r6i", "r7g", "t3", "t4g", "g4dn", "i3",
    "x2iedn", "u-6tb1",
];
/// Types existing nodes and in-flight claims run on.
pub const NODE_TYPES: [&str; 4] = ["m5.xlarge", "c6g.2xlarge", "r5.large", "g4dn.xlarge"];

pub fn catalog() -> Arc<Vec<InstanceType>> {
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

pub fn find_type(name: &str) -> InstanceType {
    match catalog().iter().find(|t| t.name == name) {
        Some(t) => t.clone(),
        None => panic!("{name} is in the catalog slice"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Zone,
    Host,
    CapacityType,
}

impl Key {
    pub fn label(self) -> &'static str {
        match self {
            Key::Zone => labels::ZONE,
            Key::Host => labels::HOSTNAME,
            Key::CapacityType => labels::CAPACITY_TYPE,
        }
    }
}

#[derive(Debug, Clone)]
pub enum NodeReq {
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
pub struct Spread {
    pub key: Key,
    pub max_skew: i32,
    pub hard: bool,
}

#[derive(Debug, Clone)]
pub struct PodSpec {
    pub cpu_m: i64,
    pub mem_mi: i64,
    pub gpu: bool,
    pub app: usize,
    pub arch: Option<&'static str>,
    /// OR of terms, each an AND.
    pub terms: Vec<Vec<NodeReq>>,
    pub tolerates: bool,
    pub spreads: Vec<Spread>,
    /// Required pod affinity: (key, selected app).
    pub affinity: Option<(Key, usize)>,
    pub anti: Option<(Key, usize)>,
    pub soft_anti: Option<usize>,
    pub port: Option<i32>,
}

#[derive(Debug, Clone)]
pub struct DaemonSpec {
    pub cpu_m: i64,
    pub mem_mi: i64,
    pub tolerates: bool,
    pub arch: Option<&'static str>,
}

#[derive(Debug, Clone, Copy)]
pub enum Limit {
    Cpu(i64),
    MemoryGi(i64),
    Nodes(i64),
}

#[derive(Debug, Clone)]
pub struct PoolSpec {
    pub spot: bool,
    pub on_demand: bool,
    pub categories: Vec<&'static str>,
    pub zones: Option<Vec<&'static str>>,
    pub tainted: bool,
    pub limit: Option<Limit>,
    pub weight: i32,
    pub team: Option<&'static str>,
    /// Zones of the node class's subnets: the catalog the pool plans from is offered only there.
    pub subnet_zones: Option<Vec<&'static str>>,
}

#[derive(Debug, Clone)]
pub struct BoundSpec {
    pub app: usize,
    pub cpu_m: i64,
    pub anti_host: bool,
    pub port: Option<i32>,
}

#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub instance_type: &'static str,
    pub zone: &'static str,
    pub spot: bool,
    /// Index of the pool it belongs to (taken modulo the pools drawn), if any.
    pub pool: Option<usize>,
    pub tainted: bool,
    pub cordoned: bool,
    pub bound: Vec<BoundSpec>,
}

#[derive(Debug, Clone)]
pub struct ClaimSpec {
    pub instance_type: &'static str,
    pub zones: Vec<&'static str>,
    pub spot: bool,
    pub launched: bool,
    /// Pending pods (indices modulo the pods drawn) the claim was launched for.
    pub launched_for: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct World {
    pub pods: Vec<PodSpec>,
    pub daemons: Vec<DaemonSpec>,
    pub pools: Vec<PoolSpec>,
    pub nodes: Vec<NodeSpec>,
    pub claims: Vec<ClaimSpec>,
    /// (type index into the slice, zone, spot).
    pub unavailable: Vec<(usize, &'static str, bool)>,
}
