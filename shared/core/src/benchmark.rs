//! Scheduling benchmark workloads, deterministic for a seed.
//!
//! The **diverse** mix is Karpenter's own scheduling benchmark mix: five equal parts — plain
//! pods, zone topology spread (maxSkew 1, DoNotSchedule), hostname topology spread, zone
//! self-affinity, and hostname anti-affinity — with CPU one of 100m/250m/500m/1/1.5 and memory
//! one of 100Mi/256Mi/512Mi/1Gi/2Gi/4Gi. Spread pods carry a random `my-label` value and spread
//! over a (separately drawn) random `my-label` selector; affinity pods select their own random
//! `my-affinity` value; anti-affinity pods all repel each other (`app: nginx`). The **plain** mix
//! is the first part alone. The **mixed** mix is what a cluster of services asks of a pool that
//! allows spot and on-demand on both architectures: pods without constraints in three shapes of
//! different CPU:memory ratios (web 500m/512Mi, api 1/4Gi, cache 250m/2Gi), in equal numbers.

use crate::api::{ConfigObject, NodePool, parse_config_object};
use crate::builders::{pod, pool_input};
use crate::labels;
use crate::pod::Pod;
use crate::scheduler::Input;

/// Which pods to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    Plain,
    Diverse,
    Mixed,
}

impl std::str::FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "plain" => Ok(Mix::Plain),
            "diverse" => Ok(Mix::Diverse),
            "mixed" => Ok(Mix::Mixed),
            other => Err(format!("unknown mix {other:?}: expected plain, diverse or mixed")),
        }
    }
}

/// splitmix64: tiny, fast and good enough to draw benchmark and test workloads reproducibly.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next_u64() % items.len() as u64) as usize]
    }
}

const CPUS: [&str; 5] = ["100m", "250m", "500m", "1", "1500m"];
const MEMORIES: [&str; 6] = ["100Mi", "256Mi", "512Mi", "1Gi", "2Gi", "4Gi"];
const VALUES: [&str; 7] = ["a", "b", "c", "d", "e", "f", "g"];

/// The mixed mix's shapes: (cpu, memory).
const SHAPES: [(&str, &str); 3] = [("500m", "512Mi"), ("1", "4Gi"), ("250m", "2Gi")];

/// `count` pending pods of the mix.
pub fn pods(count: usize, mix: Mix, seed: u64) -> Vec<Pod> {
    if mix == Mix::Mixed {
        return (0..count)
            .map(|i| {
                let (cpu, memory) = SHAPES[i % SHAPES.len()];
                pod(&format!("pod-{i:06}"))
                    .cpu(cpu)
                    .memory(memory)
                    .created_at(i as i64)
                    .build()
            })
            .collect();
    }
    let mut rng = Rng(seed);
    (0..count)
        .map(|i| {
            let name = format!("pod-{i:06}");
            let base = pod(&name)
                .cpu(rng.pick(&CPUS))
                .memory(rng.pick(&MEMORIES))
                .created_at(i as i64);
            let part = if mix == Mix::Plain {
                0
            } else {
                i * 5 / count.max(1)
            };
            match part {
                0 => base.build(),
                1 | 2 => {
                    let key = if part == 1 { labels::ZONE } else { labels::HOSTNAME };
                    let own = rng.pick(&VALUES);
                    let selected = rng.pick(&VALUES);
                    base.label("my-label", own)
                        .spread_with(key, 1, &[("my-label", selected)])
                        .build()
                }
                3 => {
                    let v = rng.pick(&VALUES);
                    base.label("my-affinity", v)
                        .affinity(labels::ZONE, &[("my-affinity", v)])
                        .build()
                }
                _ => base
                    .label("app", "nginx")
                    .anti_affinity(labels::HOSTNAME, &[("app", "nginx")])
                    .build(),
            }
        })
        .collect()
}

/// Karpenter's getting-started NodePool, as its guide writes it (on-demand, amd64, categories
/// c/m/r, generation > 2, at most 1000 CPUs).
pub fn getting_started_nodepool_json() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": "default"},
        "spec": {
            "template": {"spec": {
                "requirements": [
                    {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                    {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                    {"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["c", "m", "r"]},
                    {"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["2"]}
                ],
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
                "expireAfter": "720h"
            }},
            "limits": {"cpu": 1000},
            "disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "1m"}
        }
    })
}

/// The NodePool the benchmark launches from: the getting-started pool without its 1000-CPU
/// limit, which 10,000 pods exceed. nodewright-manifests checks that it is
/// `infra/examples/default-nodepool.yaml`'s pool.
pub fn nodepool() -> NodePool {
    let mut pool = getting_started_nodepool_json();
    if let Some(spec) = pool["spec"].as_object_mut() {
        spec.remove("limits");
    }
    match parse_config_object(&pool) {
        Ok(ConfigObject::NodePool(np)) => *np,
        other => panic!("the getting-started NodePool must parse: {other:?}"),
    }
}

/// The mixed mix's NodePool: the getting-started pool opened to spot and to arm64.
pub fn mixed_nodepool() -> NodePool {
    let mut np = nodepool();
    for r in &mut np.spec.template.spec.requirements {
        if r.key == labels::CAPACITY_TYPE {
            r.values = vec![
                labels::CAPACITY_TYPE_SPOT.into(),
                labels::CAPACITY_TYPE_ON_DEMAND.into(),
            ];
        }
        if r.key == labels::ARCH {
            r.values = vec!["amd64".into(), "arm64".into()];
        }
    }
    np
}

/// A whole scheduling input: the pods over the full embedded catalog, no existing nodes.
pub fn input(count: usize, mix: Mix, seed: u64) -> Input {
    let pool = if mix == Mix::Mixed {
        mixed_nodepool()
    } else {
        nodepool()
    };
    Input {
        pending: pods(count, mix, seed),
        pools: vec![pool_input(pool)],
        ..Input::default()
    }
}

/// A cluster for the consolidation benchmark: `nodes` initialized nodes of the mixed pool (a
/// third of them spot; m, c and r types of several sizes, three zones), filled to between 20%
/// and 90% of their CPU with up to `pods` pods of 100m, 250m or 500m CPU and 100Mi to 1Gi of
/// memory, owned by twenty Deployments, 1% of them
/// `do-not-disrupt`, and PodDisruptionBudgets (`maxUnavailable: 1`) over five of the
/// Deployments. Every node has settled long ago, so every one is a candidate.
pub fn consolidation_input(nodes: usize, pods: usize, seed: u64) -> crate::disruption::SweepInput {
    use crate::catalog::CapacityType;
    use crate::nodeclaim::{ClaimState, LaunchedInstance};
    use crate::resources::ResourceName;
    use crate::scheduler::ExistingNode;

    const TYPES: [&str; 8] = [
        "m5.large",
        "m5.xlarge",
        "m5.2xlarge",
        "c5.xlarge",
        "c5.2xlarge",
        "r5.large",
        "r5.xlarge",
        "m6i.xlarge",
    ];
    const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
    let mut rng = Rng(seed);
    let pool = pool_input(mixed_nodepool());
    let now: crate::pod::Millis = 1_800_000_000_000;
    let launched = now - 24 * 3_600_000;
    let mut input = crate::disruption::SweepInput {
        now,
        ..Default::default()
    };
    let mut room = Vec::new();
    for i in 0..nodes {
        let Some(t) = pool
            .instance_types
            .iter()
            .find(|t| t.name == TYPES[i % TYPES.len()])
        else {
            continue;
        };
        let zone = ZONES[rng.below(ZONES.len())];
        let capacity_type = if i % 3 == 0 {
            CapacityType::Spot
        } else {
            CapacityType::OnDemand
        };
        let Some(offering) = t
            .offerings
            .iter()
            .find(|o| o.zone == zone && o.capacity_type == capacity_type)
        else {
            continue;
        };
        let id = format!("default-{i:05}");
        let mut claim = crate::builders::launched_claim(&id, launched);
        claim.state = ClaimState::Initialized;
        claim.initialized_at = Some(launched + 60_000);
        claim.instance = Some(LaunchedInstance {
            instance_id: format!("i-{i:017x}"),
            instance_type: t.name.clone(),
            zone: zone.into(),
            capacity_type,
            price: offering.price,
        });
        claim.disruption.template_hash = Some(crate::api::template_hash(&pool.nodepool, &pool.nodeclass));
        let name = format!("ip-10-0-{}-{}.ec2.internal", i / 256, i % 256);
        let mut node = crate::builders::kubelet_node(&claim, &name, launched + 45_000);
        node.allocatable = t.allocatable.clone();
        node.labels
            .extend(crate::lifecycle::registration_labels(&claim, Some(t)));
        // Fill to 20–90% of CPU.
        let cpu = t.allocatable.get(ResourceName::Cpu);
        let target = cpu * (20 + rng.below(71) as i64) / 100;
        room.push((input.nodes.len(), target, 0i64));
        input.nodes.push(ExistingNode {
            node,
            pods: Vec::new(),
        });
        input.claims.push(claim);
    }
    let mut open: Vec<usize> = (0..room.len()).collect();
    for p in 0..pods {
        if open.is_empty() {
            break;
        }
        let slot = open[rng.below(open.len())];
        let (n, target, used) = room[slot];
        let cpu = rng.pick(&CPUS[..3]);
        let app = format!("app-{}", p % 20);
        let mut pod = pod(&format!("{app}-{p:06}"))
            .cpu(cpu)
            .memory(rng.pick(&MEMORIES[..4]))
            .label("app", &app)
            .on_node(&input.nodes[n].node.name)
            .build();
        pod.owner_kind = Some("ReplicaSet".into());
        pod.owner_name = Some(format!("{app}-rs"));
        pod.do_not_disrupt = rng.below(100) == 0;
        let milli = pod.requests.get(crate::resources::ResourceName::Cpu);
        input.nodes[n].pods.push(pod);
        room[slot].2 = used + milli;
        if used + milli >= target {
            open.retain(|&s| s != slot);
        }
    }
    for k in 0..5 {
        input.pdbs.push(crate::pdb::PodDisruptionBudget {
            namespace: "default".into(),
            name: format!("app-{k}"),
            selector: Some(crate::pod::LabelSelector::match_labels(&[(
                "app",
                &format!("app-{k}"),
            )])),
            budget: crate::pdb::Budget::MaxUnavailable(crate::pdb::IntOrPercent::Int(1)),
        });
    }
    input.pools = vec![pool];
    input
}

/// Interruption messages for the interruption benchmark: `count` EventBridge bodies as SQS
/// delivers them — spot warnings, rebalance recommendations, scheduled changes and state
/// changes in equal parts — for `count / 2` instances of which nine in ten are ours, with the
/// live claims of ours by instance id.
pub fn interruption_messages(
    count: usize,
    seed: u64,
) -> (
    Vec<String>,
    std::collections::BTreeMap<String, crate::nodeclaim::NodeClaim>,
) {
    const KINDS: [&str; 5] = [
        include_str!("interruption/fixtures/spot-warning.json"),
        include_str!("interruption/fixtures/rebalance.json"),
        include_str!("interruption/fixtures/scheduled-change.json"),
        include_str!("interruption/fixtures/state-stopping.json"),
        include_str!("interruption/fixtures/state-terminated.json"),
    ];
    const FIXTURE_INSTANCE: &str = "i-0b662ef9931388ba0";
    let mut rng = Rng(seed);
    let instances = (count / 2).max(1);
    let mut claims = std::collections::BTreeMap::new();
    for i in 0..instances {
        if i % 10 == 9 {
            continue;
        }
        let id = format!("i-{i:017x}");
        let mut claim = crate::builders::launched_claim(&format!("default-{i:05}"), 0);
        claim.state = crate::nodeclaim::ClaimState::Initialized;
        if let Some(instance) = claim.instance.as_mut() {
            instance.instance_id = id.clone();
            instance.capacity_type = crate::catalog::CapacityType::Spot;
        }
        claims.insert(id, claim);
    }
    let messages = (0..count)
        .map(|_| {
            let id = format!("i-{:017x}", rng.below(instances));
            KINDS[rng.below(KINDS.len())].replace(FIXTURE_INSTANCE, &id)
        })
        .collect();
    (messages, claims)
}
