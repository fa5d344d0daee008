//! Strategies drawing worlds of specs.

use proptest::prelude::*;

use super::specs::*;

pub fn node_req() -> impl Strategy<Value = NodeReq> {
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

pub fn key() -> impl Strategy<Value = Key> {
    prop_oneof![Just(Key::Zone), Just(Key::Host), Just(Key::CapacityType)]
}

pub fn spread() -> impl Strategy<Value = Spread> {
    (key(), 1..=2i32, prop::bool::weighted(0.8)).prop_map(|(key, max_skew, hard)| Spread {
        key,
        max_skew,
        hard,
    })
}

pub fn pod_spec() -> impl Strategy<Value = PodSpec> {
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

pub fn daemon_spec() -> impl Strategy<Value = DaemonSpec> {
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

pub fn limit() -> impl Strategy<Value = Limit> {
    prop_oneof![
        prop::sample::select(vec![8i64, 32, 256, 1000]).prop_map(Limit::Cpu),
        prop::sample::select(vec![32i64, 48, 256]).prop_map(Limit::MemoryGi),
        (1..=4i64).prop_map(Limit::Nodes),
    ]
}

pub fn pool_spec() -> impl Strategy<Value = PoolSpec> {
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

pub fn node_spec() -> impl Strategy<Value = NodeSpec> {
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

pub fn claim_spec() -> impl Strategy<Value = ClaimSpec> {
    (
        prop::sample::select(NODE_TYPES.to_vec()),
        prop::sample::subsequence(ZONES[..3].to_vec(), 1..=2),
        any::<bool>(),
        prop::bool::weighted(0.6),
        prop::collection::vec(0..64usize, 0..=3),
    )
        .prop_map(|(instance_type, zones, spot, launched, launched_for)| ClaimSpec {
            instance_type,
            zones,
            spot,
            launched,
            launched_for,
        })
}

/// A pod with nothing but requests: the kind the scheduler may repack freely.
pub fn free_pod_spec() -> impl Strategy<Value = PodSpec> {
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

pub fn world() -> impl Strategy<Value = World> {
    world_of(prop::collection::vec(pod_spec(), 1..40))
}

/// Many pods, most of them free, so that claims get packed again.
pub fn busy_world() -> impl Strategy<Value = World> {
    world_of(prop::collection::vec(
        prop_oneof![4 => free_pod_spec(), 1 => pod_spec()],
        100..400,
    ))
}

pub fn world_of(pods: impl Strategy<Value = Vec<PodSpec>>) -> impl Strategy<Value = World> {
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
