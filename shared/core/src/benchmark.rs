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

/// The NodePool the benchmark launches from: Karpenter's getting-started pool (on-demand,
/// amd64, categories c/m/r, generation > 2) without its 1000-CPU limit, which 10,000 pods exceed.
pub fn nodepool() -> NodePool {
    let yaml = include_str!("../../../infra/examples/default-nodepool.yaml");
    let doc = yaml.split("\n---").next().unwrap_or(yaml);
    match parse_config_object(doc, "default-nodepool.yaml") {
        Ok(ConfigObject::NodePool(mut np)) => {
            np.spec.limits.clear();
            *np
        }
        other => panic!("the embedded example NodePool must parse: {other:?}"),
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
