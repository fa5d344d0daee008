//! Building the scheduler's input from the specs.

use std::sync::Arc;

use nodewright_core::builders::{nodeclass, nodepool, pod};
use nodewright_core::catalog::CapacityType;
use nodewright_core::labels;
use nodewright_core::pod::{Node, Taint, TaintEffect};
use nodewright_core::ports::OfferingKey;
use nodewright_core::requirements::Operator;
use nodewright_core::scheduler::{ExistingNode, Input, PoolInput};
use nodewright_core::testing::claim;
use nodewright_core::unavailable::UnavailableOfferings;

use super::specs::*;

pub fn pod_key(i: usize) -> String {
    format!("default/p{i}")
}

pub fn ct_name(spot: bool) -> &'static str {
    if spot { "spot" } else { "on-demand" }
}

pub fn build_pod(i: usize, s: &PodSpec) -> nodewright_core::pod::Pod {
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

pub fn build_pool(i: usize, s: &PoolSpec) -> PoolInput {
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

pub fn node_name(i: usize) -> String {
    format!("node{i}")
}

pub fn claim_id(i: usize) -> String {
    format!("pool0-claim{i}")
}

pub fn tainted_with() -> Taint {
    Taint::new(TAINT_KEY, Some("true"), TaintEffect::NoSchedule)
}

pub fn build_input(w: &World) -> Input {
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
            let launched_for: Vec<String> =
                c.launched_for.iter().map(|r| pod_key(r % w.pods.len())).collect();
            let mut b = claim(&claim_id(i))
                .nodepool("pool0")
                .without_labels()
                .instance_types(&[c.instance_type])
                .zones(&c.zones)
                .capacity_types(&[ct])
                .pods(&launched_for);
            if let Some(team) = pool0.team {
                b = b.label(TEAM_KEY, team);
            }
            if pool0.tainted {
                b = b.taint(tainted_with());
            }
            if c.launched {
                b = b.launched(&format!("i-{i}"), 0).price(0.1);
            }
            b.build()
        })
        .collect();
    let types = catalog();
    let mut unavailable = UnavailableOfferings::new();
    for (t, zone, spot) in &w.unavailable {
        let key = OfferingKey {
            instance_type: types[t % types.len()].name.clone(),
            zone: zone.to_string(),
            capacity_type: if *spot {
                CapacityType::Spot
            } else {
                CapacityType::OnDemand
            },
        };
        unavailable.mark(key, 0);
    }
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
