//! Property tests: for random pods and NodePools over the embedded catalog, no plan breaks a
//! hard constraint. The checker re-derives everything from the generated specs and the chosen
//! instance type's labels and allocatable; it shares no code with the solver's fit tests.

use std::collections::{BTreeMap, BTreeSet};

use nodewright_core::builders::{nodepool, pod, pool_input};
use nodewright_core::catalog::{CapacityType, InstanceType};
use nodewright_core::labels;
use nodewright_core::pod::{Pod, TaintEffect};
use nodewright_core::requirements::Operator;
use nodewright_core::scheduler::{Input, MAX_INSTANCE_TYPES, Plan, PoolInput, schedule};
use proptest::prelude::*;

const APPS: [&str; 3] = ["web", "api", "batch"];
const CPU_M: [i64; 6] = [100, 250, 500, 1000, 2000, 4000];
const MEM_MI: [i64; 5] = [128, 512, 1024, 4096, 16384];
const CATEGORIES: [&str; 4] = ["c", "m", "r", "t"];
const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
const TAINT_KEY: &str = "dedicated";

#[derive(Debug, Clone)]
struct PodSpec {
    cpu_m: i64,
    mem_mi: i64,
    app: usize,
    arch: Option<&'static str>,
    zones_in: Option<Vec<&'static str>>,
    not_category: Option<&'static str>,
    tolerates: bool,
    zone_spread: Option<i32>,
    host_spread: Option<i32>,
    host_anti: bool,
    port: Option<i32>,
}

#[derive(Debug, Clone)]
struct PoolSpec {
    spot: bool,
    on_demand: bool,
    categories: Vec<&'static str>,
    tainted: bool,
    cpu_limit: Option<i64>,
    weight: i32,
}

fn pod_spec() -> impl Strategy<Value = PodSpec> {
    (
        (0..CPU_M.len(), 0..MEM_MI.len(), 0..APPS.len()),
        prop::option::weighted(0.3, prop::sample::select(vec!["amd64", "arm64"])),
        prop::option::weighted(0.2, prop::sample::subsequence(ZONES.to_vec(), 1..=2)),
        prop::option::weighted(0.2, prop::sample::select(CATEGORIES.to_vec())),
        any::<bool>(),
        (
            prop::option::weighted(0.25, 1..=2i32),
            prop::option::weighted(0.15, 1..=2i32),
            prop::bool::weighted(0.15),
            prop::option::weighted(0.1, prop::sample::select(vec![8080, 9090])),
        ),
    )
        .prop_map(
            |(
                (cpu, mem, app),
                arch,
                zones_in,
                not_category,
                tolerates,
                (zone_spread, host_spread, host_anti, port),
            )| {
                PodSpec {
                    cpu_m: CPU_M[cpu],
                    mem_mi: MEM_MI[mem],
                    app,
                    arch,
                    zones_in,
                    not_category,
                    tolerates,
                    zone_spread,
                    host_spread,
                    host_anti,
                    port,
                }
            },
        )
}

fn pool_spec() -> impl Strategy<Value = PoolSpec> {
    (
        prop::sample::select(vec![(true, true), (true, false), (false, true)]),
        prop::sample::subsequence(CATEGORIES.to_vec(), 1..=3),
        prop::bool::weighted(0.3),
        prop::option::weighted(0.3, prop::sample::select(vec![16i64, 64, 256])),
        0..3i32,
    )
        .prop_map(
            |((spot, on_demand), categories, tainted, cpu_limit, weight)| PoolSpec {
                spot,
                on_demand,
                categories,
                tainted,
                cpu_limit,
                weight,
            },
        )
}

fn build_pod(i: usize, s: &PodSpec) -> Pod {
    let app = APPS[s.app];
    let mut b = pod(&format!("p{i}"))
        .cpu(&format!("{}m", s.cpu_m))
        .memory(&format!("{}Mi", s.mem_mi))
        .label("app", app);
    if let Some(arch) = s.arch {
        b = b.node_selector(labels::ARCH, arch);
    }
    if let Some(zones) = &s.zones_in {
        b = b.require(labels::ZONE, Operator::In, zones);
    }
    if let Some(c) = s.not_category {
        b = b.require(labels::INSTANCE_CATEGORY, Operator::NotIn, &[c]);
    }
    if s.tolerates {
        b = b.tolerate(TAINT_KEY, Some("true"), Some(TaintEffect::NoSchedule));
    }
    if let Some(skew) = s.zone_spread {
        b = b.zone_spread(skew);
    }
    if let Some(skew) = s.host_spread {
        b = b.hostname_spread(skew);
    }
    if s.host_anti {
        b = b.anti_affinity(labels::HOSTNAME, &[("app", app)]);
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
    if s.tainted {
        b = b.taint(TAINT_KEY, Some("true"), TaintEffect::NoSchedule);
    }
    if let Some(cpu) = s.cpu_limit {
        b = b.limit("cpu", &cpu.to_string());
    }
    pool_input(b.build())
}

/// The labels a node of this claim carries, from the chosen type and offering.
fn node_labels(t: &InstanceType, zone: &str, ct: CapacityType, pool: &str) -> BTreeMap<String, String> {
    let mut l = t.labels.clone();
    l.insert(labels::ZONE.into(), zone.into());
    l.insert(labels::CAPACITY_TYPE.into(), ct.as_str().into());
    l.insert(labels::NODEPOOL.into(), pool.into());
    l
}

/// Every hard constraint of one pod spec against a node's labels and pool taint.
fn admits(s: &PodSpec, labels_: &BTreeMap<String, String>, tainted: bool) -> Result<(), String> {
    let get = |k: &str| labels_.get(k).map(String::as_str);
    if let Some(arch) = s.arch
        && get(labels::ARCH) != Some(arch)
    {
        return Err(format!("nodeSelector arch {arch} vs {:?}", get(labels::ARCH)));
    }
    if let Some(zones) = &s.zones_in
        && !get(labels::ZONE).is_some_and(|z| zones.contains(&z))
    {
        return Err(format!("zone {:?} not in {zones:?}", get(labels::ZONE)));
    }
    if let Some(c) = s.not_category
        && get(labels::INSTANCE_CATEGORY) == Some(c)
    {
        return Err(format!("category {c} excluded"));
    }
    if tainted && !s.tolerates {
        return Err("untolerated taint".into());
    }
    Ok(())
}

fn check(pods: &[PodSpec], pools: &[PoolSpec], inputs: &[PoolInput], plan: &Plan) -> Result<(), String> {
    // Every pod exactly once: on a new claim or unschedulable with a reason.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for c in &plan.new_claims {
        for p in &c.pods {
            *seen.entry(p.clone()).or_default() += 1;
        }
    }
    for u in &plan.unschedulable {
        if u.reason.trim().is_empty() {
            return Err(format!("{} unschedulable without a reason", u.pod));
        }
        *seen.entry(u.pod.clone()).or_default() += 1;
    }
    for i in 0..pods.len() {
        let key = format!("default/p{i}");
        if seen.get(&key) != Some(&1) {
            return Err(format!("{key} appears {:?} times", seen.get(&key)));
        }
    }
    let spec_of = |key: &str| -> &PodSpec {
        let i: usize = key.trim_start_matches("default/p").parse().unwrap_or(usize::MAX);
        &pods[i]
    };

    let mut zone_counts: BTreeMap<(usize, i32), BTreeMap<String, i64>> = BTreeMap::new();
    let mut pool_cpu: BTreeMap<String, i64> = BTreeMap::new();
    for c in &plan.new_claims {
        let pi: usize = c
            .nodepool
            .trim_start_matches("pool")
            .parse()
            .map_err(|_| "pool name")?;
        let (pool, input) = (&pools[pi], &inputs[pi]);
        if c.instance_types.is_empty() || c.instance_types.len() > MAX_INSTANCE_TYPES {
            return Err(format!("{} instance types", c.instance_types.len()));
        }
        let chosen = &c.chosen;
        if !c.instance_types.contains(&chosen.instance_type)
            || !c.zones.contains(&chosen.zone)
            || !c.capacity_types.contains(&chosen.capacity_type)
        {
            return Err(format!("chosen {chosen:?} outside the claim {c:?}"));
        }
        let allowed_ct = match chosen.capacity_type {
            CapacityType::Spot => pool.spot,
            CapacityType::OnDemand => pool.on_demand,
        };
        if !allowed_ct {
            return Err(format!(
                "capacity type {:?} not allowed by {pool:?}",
                chosen.capacity_type
            ));
        }
        // Every type the claim may launch, not only the chosen one, must satisfy every pod.
        let mut max_cpu_capacity = 0;
        for name in &c.instance_types {
            let t = input
                .instance_types
                .iter()
                .find(|t| &t.name == name)
                .ok_or(format!("unknown type {name}"))?;
            max_cpu_capacity = max_cpu_capacity.max(t.capacity.cpu());
            let category = t.labels.get(labels::INSTANCE_CATEGORY).map(String::as_str);
            if !category.is_some_and(|cat| pool.categories.contains(&cat)) {
                return Err(format!(
                    "{name} outside the pool's categories {:?}",
                    pool.categories
                ));
            }
            for zone in &c.zones {
                let offered = t
                    .offerings
                    .iter()
                    .any(|o| &o.zone == zone && c.capacity_types.contains(&o.capacity_type));
                let l = node_labels(t, zone, chosen.capacity_type, &c.nodepool);
                if !offered {
                    continue;
                }
                let mut cpu = 0;
                let mut mem = 0;
                let mut ports = BTreeSet::new();
                for p in &c.pods {
                    let s = spec_of(p);
                    admits(s, &l, pool.tainted).map_err(|e| format!("{p} on {name} in {zone}: {e}"))?;
                    cpu += s.cpu_m;
                    mem += s.mem_mi * 1024 * 1024;
                    if let Some(port) = s.port
                        && !ports.insert(port)
                    {
                        return Err(format!("host port {port} twice on one node"));
                    }
                }
                if cpu > t.allocatable.cpu() || mem > t.allocatable.memory() {
                    return Err(format!(
                        "{name}: pods need {cpu}m/{mem}B, allocatable {}m/{}B",
                        t.allocatable.cpu(),
                        t.allocatable.memory()
                    ));
                }
                if c.pods.len() as i64 > t.allocatable.pods() {
                    return Err(format!(
                        "{name}: {} pods > {}",
                        c.pods.len(),
                        t.allocatable.pods()
                    ));
                }
            }
            let has_chosen_offering = t.name != chosen.instance_type
                || t.offerings
                    .iter()
                    .any(|o| o.zone == chosen.zone && o.capacity_type == chosen.capacity_type);
            if !has_chosen_offering {
                return Err(format!("chosen offering {chosen:?} not in the catalog"));
            }
        }
        *pool_cpu.entry(c.nodepool.clone()).or_default() += max_cpu_capacity;
        // Hostname constraints per node. Anti-affinity is symmetric: no pod of the app may share
        // the node. A spread is checked when its pod is placed, so a pod without one may join
        // later; the pods that carry the spread are never more than maxSkew on one node (any
        // new node is a domain with none).
        // Whichever spread pod of an app was placed last on the node saw all the others, so
        // their number is within the largest maxSkew among them.
        let mut per_app: BTreeMap<usize, i64> = BTreeMap::new();
        let mut spread_per_app: BTreeMap<usize, (i64, i32)> = BTreeMap::new();
        for p in &c.pods {
            let s = spec_of(p);
            *per_app.entry(s.app).or_default() += 1;
            if let Some(skew) = s.host_spread {
                let e = spread_per_app.entry(s.app).or_default();
                e.0 += 1;
                e.1 = e.1.max(skew);
            }
        }
        for p in &c.pods {
            let s = spec_of(p);
            if s.host_anti && per_app[&s.app] > 1 {
                return Err(format!("{p} shares a node with a pod it is anti-affine to"));
            }
        }
        for (app, (count, skew)) in &spread_per_app {
            if *count > i64::from(*skew) {
                return Err(format!(
                    "{count} hostname-spread pods of app {} on one node, largest maxSkew {skew}",
                    APPS[*app]
                ));
            }
        }
        for p in &c.pods {
            let s = spec_of(p);
            if let Some(skew) = s.zone_spread {
                *zone_counts
                    .entry((s.app, skew))
                    .or_default()
                    .entry(chosen.zone.clone())
                    .or_default() += 1;
            }
        }
    }
    for (i, pool) in pools.iter().enumerate() {
        if let Some(limit) = pool.cpu_limit {
            let used = pool_cpu.get(&format!("pool{i}")).copied().unwrap_or(0);
            if used > limit * 1000 {
                return Err(format!("pool{i} reserves {used}m cpu over its limit {limit}"));
            }
        }
    }
    // Zone spread: among the zones that received pods of the group, the skew holds.
    for ((app, skew), per_zone) in &zone_counts {
        let spread_pods: Vec<&PodSpec> = pods
            .iter()
            .filter(|s| s.app == *app && s.zone_spread.is_some())
            .collect();
        // Only when the app's spread pods share one skew and one set of eligible zones (no zone
        // affinity of their own) is one count per zone the skew Kubernetes measures.
        let all_same = spread_pods
            .iter()
            .all(|s| s.zone_spread == Some(*skew) && s.zones_in.is_none());
        if !all_same {
            continue;
        }
        let max = per_zone.values().max().copied().unwrap_or(0);
        let min = per_zone.values().min().copied().unwrap_or(0);
        if max - min > i64::from(*skew) {
            return Err(format!(
                "app {} zone counts {per_zone:?} exceed maxSkew {skew}",
                APPS[*app]
            ));
        }
    }
    if plan.cost_per_hour + 1e-9 < plan.lower_bound_per_hour {
        return Err(format!(
            "cost {} below the lower bound {}",
            plan.cost_per_hour, plan.lower_bound_per_hour
        ));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_plan_breaks_a_hard_constraint(
        pods in prop::collection::vec(pod_spec(), 1..40),
        pools in prop::collection::vec(pool_spec(), 1..=2),
    ) {
        let inputs: Vec<PoolInput> = pools.iter().enumerate().map(|(i, s)| build_pool(i, s)).collect();
        let input = Input {
            pending: pods.iter().enumerate().map(|(i, s)| build_pod(i, s)).collect(),
            pools: inputs.clone(),
            ..Input::default()
        };
        let plan = schedule(&input);
        if let Err(violation) = check(&pods, &pools, &inputs, &plan) {
            return Err(TestCaseError::fail(format!("{violation}\nplan: {plan:#?}")));
        }
    }
}
