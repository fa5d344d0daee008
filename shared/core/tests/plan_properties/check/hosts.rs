//! Hosts as the checker sees them: existing nodes, in-flight claims and new claims, each with
//! every way it can turn out, and the room each way leaves for pending pods.

use nodewright_core::catalog::{CapacityType, InstanceType};
use nodewright_core::labels;
use nodewright_core::resources::{ResourceName, Resources};
use nodewright_core::scheduler::{Input, Plan};

use super::index_of;
use super::matching::Labels;
use crate::input::claim_id;
use crate::specs::{Key, PodSpec, TEAM_KEY, World, catalog};

/// The resources the checker tracks: cpu (m), memory (bytes), pods, GPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Res([i64; 4]);

impl Res {
    pub fn of(r: &Resources) -> Res {
        Res([r.cpu(), r.memory(), r.pods(), r.get(ResourceName::NvidiaGpu)])
    }

    pub fn pod(s: &PodSpec) -> Res {
        Res([s.cpu_m, s.mem_mi << 20, 1, i64::from(s.gpu)])
    }

    pub fn add(&mut self, o: Res) {
        for k in 0..4 {
            self.0[k] += o.0[k];
        }
    }

    pub fn within(&self, cap: &Res) -> bool {
        (0..4).all(|k| self.0[k] <= cap.0[k])
    }
}

/// One way a host can turn out: the node's labels and what pods can use on it.
#[derive(Debug, Clone)]
pub struct Variant {
    pub labels: Labels,
    pub room: Res,
    pub tainted: bool,
}

#[derive(Debug)]
pub struct Host {
    pub name: String,
    pub variants: Vec<Variant>,
    /// Pending pods placed here.
    pub placed: Vec<usize>,
    /// Bound pods: (app, anti-affine to its own app on the host, port, requests).
    pub bound: Vec<(usize, bool, Option<i32>)>,
}

impl Host {
    /// The value of a topology label if every variant agrees on it.
    pub fn settled(&self, key: Key) -> Option<String> {
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

pub fn node_variant_labels(
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
pub fn overhead(w: &World, l: &Labels, tainted: bool) -> Res {
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

pub fn minus(a: Res, b: Res) -> Res {
    let mut out = a;
    for k in 0..4 {
        out.0[k] -= b.0[k];
    }
    out
}

/// Existing nodes, with the pending pods the plan puts on them.
pub fn existing_hosts(w: &World, input: &Input, plan: &Plan) -> Result<Vec<Host>, String> {
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
                hosts[i].placed.push(index_of(w, p)?);
            }
        }
    }
    for (name, _) in &plan.existing {
        if !hosts.iter().any(|h| &h.name == name) {
            return Err(format!("plan uses unknown node {name}"));
        }
    }
    Ok(hosts)
}

/// In-flight claims, with the pending pods the plan puts on them.
pub fn in_flight_hosts(w: &World, plan: &Plan, hosts: &mut Vec<Host>) -> Result<(), String> {
    let types = catalog();
    let type_of = |name: &str| types.iter().find(|t| t.name == name);
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
                host.placed.push(index_of(w, p)?);
            }
        }
        hosts.push(host);
    }
    Ok(())
}
