//! `nodewright plan` end to end: the built binary on the example app in `infra/examples/plan/`,
//! its JSON checked for shape and, against the manifests, for every hard constraint.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nodewright_core::catalog::{CapacityType, InstanceType};
use nodewright_core::labels;
use nodewright_core::pod::{Pod, WhenUnsatisfiable};
use nodewright_core::resources::Resources;
use nodewright_core::scheduler::{Input, PoolInput};
use serde_json::Value;

const EXAMPLE: [&str; 2] = ["infra/examples/default-nodepool.yaml", "infra/examples/plan/"];

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the CLI sits in the workspace")
}

fn nodewright(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nodewright"))
        .current_dir(workspace())
        .args(args)
        .output()
        .expect("the binary runs")
}

fn example(output: &str) -> Output {
    let out = nodewright(&["plan", "-f", EXAMPLE[0], "-f", EXAMPLE[1], "--output", output]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn example_json() -> Value {
    serde_json::from_slice(&example("json").stdout).expect("valid JSON")
}

fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|s| s.as_str().expect("a string"))
        .collect()
}

fn number(v: &Value) -> f64 {
    v.as_f64().expect("a number")
}

#[test]
fn json_output_has_the_documented_shape() {
    let json = example_json();
    assert_eq!(
        keys(&json),
        [
            "cost_per_hour",
            "existing",
            "lower_bound_per_hour",
            "nodeclaims",
            "unschedulable"
        ]
    );
    let claims = json["nodeclaims"].as_array().expect("nodeclaims");
    assert!(!claims.is_empty(), "the example needs new nodes");
    let mut total = 0.0;
    for (i, claim) in claims.iter().enumerate() {
        assert_eq!(
            keys(claim),
            [
                "capacity_types",
                "chosen",
                "instance_types",
                "name",
                "nodepool",
                "pods",
                "zones"
            ]
        );
        assert_eq!(claim["name"], format!("default-{}", i + 1));
        assert_eq!(claim["nodepool"], "default");
        for list in ["instance_types", "zones", "capacity_types", "pods"] {
            assert!(!strings(&claim[list]).is_empty(), "{list} of {claim}");
        }
        assert_eq!(
            keys(&claim["chosen"]),
            ["capacity_type", "instance_type", "price", "zone"]
        );
        total += number(&claim["chosen"]["price"]);
    }
    assert!(json["existing"].as_array().is_some());
    assert!(json["unschedulable"].as_array().is_some());
    let cost = number(&json["cost_per_hour"]);
    assert!(
        (cost - total).abs() < 1e-9,
        "cost {cost} is the sum of the chosen prices {total}"
    );
    let bound = number(&json["lower_bound_per_hour"]);
    assert!(
        bound > 0.0 && bound <= cost + 1e-9,
        "lower bound {bound} vs cost {cost}"
    );
}

#[test]
fn the_example_plan_breaks_no_hard_constraint() {
    let json = example_json();
    let paths: Vec<PathBuf> = EXAMPLE.iter().map(|p| workspace().join(p)).collect();
    let input = nodewright_manifests::read_manifests(&paths)
        .expect("the example reads")
        .to_input()
        .expect("the example is a scheduling round");
    check(&input, &json);
}

#[test]
fn table_output_lists_each_claim_and_the_totals() {
    let out = example("table");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("NODECLAIM"), "{text}");
    assert!(lines[1].starts_with("default-1  default"), "{text}");
    let totals = lines.last().expect("a totals line");
    assert!(
        totals.contains("new node(s) at $") && totals.contains("lower bound $"),
        "{text}"
    );
    let stderr = String::from_utf8(out.stderr).expect("UTF-8");
    assert_eq!(
        stderr.trim(),
        "warning: infra/examples/plan/web.yaml document 2: skipped Service shop/web: the planner does not use kind Service"
    );
}

#[test]
fn a_bad_manifest_fails_naming_the_file_document_and_field() {
    let dir = std::env::temp_dir().join(format!("nodewright-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("bad.yaml");
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - name: app\n    resources: {requests: {memory: 1GB}}\n";
    std::fs::write(&file, format!("kind: ConfigMap\n---\n{pod}")).expect("write");
    let out = nodewright(&["plan", "-f", file.to_str().expect("UTF-8 path")]);
    std::fs::remove_dir_all(&dir).expect("clean up");
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).expect("UTF-8");
    assert!(
        stderr.contains(
            "bad.yaml document 2: Pod default/web: spec.containers[0].resources.requests.memory: invalid quantity \"1GB\""
        ),
        "{stderr}"
    );
}

/// Where each planned pod went: a new claim (its index) or an existing node.
enum Host {
    Claim(usize),
    Existing,
}

fn check(input: &Input, json: &Value) {
    let pending: HashMap<String, &Pod> = input.pending.iter().map(|p| (p.key(), p)).collect();
    let claims = json["nodeclaims"].as_array().expect("nodeclaims");
    let mut assignments: Vec<(&str, Host)> = Vec::new();
    for (i, claim) in claims.iter().enumerate() {
        assignments.extend(
            strings(&claim["pods"])
                .into_iter()
                .map(|pod| (pod, Host::Claim(i))),
        );
    }
    for node in json["existing"].as_array().expect("existing") {
        assert!(node["node"].is_string(), "{node}");
        assignments.extend(
            strings(&node["pods"])
                .into_iter()
                .map(|pod| (pod, Host::Existing)),
        );
    }
    let mut placed: BTreeMap<&str, Host> = BTreeMap::new();
    for (pod, host) in assignments {
        assert!(pending.contains_key(pod), "{pod} was not pending");
        assert!(placed.insert(pod, host).is_none(), "{pod} is placed twice");
    }
    assert_eq!(
        json["unschedulable"],
        Value::Array(Vec::new()),
        "the example fits"
    );
    assert_eq!(placed.len(), pending.len(), "every pending pod is placed");
    assert!(
        placed.values().all(|h| matches!(h, Host::Claim(_))),
        "the example has no nodes"
    );

    let on_claim = |i: usize| -> Vec<&Pod> {
        placed
            .iter()
            .filter(|(_, h)| matches!(h, Host::Claim(c) if *c == i))
            .map(|(k, _)| pending[*k])
            .collect()
    };
    let mut claim_labels = Vec::new();
    for (i, claim) in claims.iter().enumerate() {
        let pool = input
            .pools
            .iter()
            .find(|p| p.nodepool.name() == claim["nodepool"])
            .expect("a pool of the input");
        let pods = on_claim(i);
        let labels = check_claim(pool, claim, &pods, &input.daemonsets);
        claim_labels.push(labels);
    }
    let domain = |i: usize, key: &str| claim_labels[i].get(key).cloned();

    for (key, host) in &placed {
        let pod = pending[*key];
        let Host::Claim(i) = host else { continue };
        // Required anti-affinity: no selected pod in the same domain.
        for term in &pod.pod_anti_affinity {
            let mine = domain(*i, &term.topology_key);
            for (other, other_host) in &placed {
                let Host::Claim(j) = other_host else { continue };
                let o = pending[*other];
                if other != key
                    && term.selects(&pod.namespace, &o.namespace, &o.labels)
                    && mine.is_some()
                    && domain(*j, &term.topology_key) == mine
                {
                    panic!("{key} and {other} share {} {mine:?}", term.topology_key);
                }
            }
        }
        // Zone spread: counts over every zone the pool offers differ by at most maxSkew.
        for spread in &pod.topology_spread {
            if spread.when_unsatisfiable != WhenUnsatisfiable::DoNotSchedule {
                continue;
            }
            assert_eq!(
                spread.topology_key,
                labels::ZONE,
                "the example spreads over zones"
            );
            let pool = &input.pools[0];
            let mut counts: BTreeMap<String, i32> = pool_zones(pool).into_iter().map(|z| (z, 0)).collect();
            for (other, other_host) in &placed {
                let Host::Claim(j) = other_host else { continue };
                let o = pending[*other];
                if o.namespace == pod.namespace && spread.selector.matches(&o.labels) {
                    *counts
                        .entry(domain(*j, labels::ZONE).expect("a zone"))
                        .or_default() += 1;
                }
            }
            let (max, min) = (
                counts.values().max().copied().unwrap_or(0),
                counts.values().min().copied().unwrap_or(0),
            );
            assert!(
                max - min <= spread.max_skew,
                "{key}: zone counts {counts:?} skew more than {}",
                spread.max_skew
            );
        }
    }
}

/// Checks one claim against its pool, the catalog and its pods; returns the labels its node
/// would carry at the chosen offering.
fn check_claim(
    pool: &PoolInput,
    claim: &Value,
    pods: &[&Pod],
    daemonsets: &[Pod],
) -> BTreeMap<String, String> {
    let name = claim["name"].as_str().expect("name");
    let types: Vec<&InstanceType> = strings(&claim["instance_types"])
        .into_iter()
        .map(|t| {
            pool.instance_types
                .iter()
                .find(|it| it.name == t)
                .unwrap_or_else(|| panic!("{name}: {t} is not in the catalog"))
        })
        .collect();
    let zones = strings(&claim["zones"]);
    let capacity_types: Vec<CapacityType> = strings(&claim["capacity_types"])
        .into_iter()
        .map(|c| CapacityType::parse(c).expect("a capacity type"))
        .collect();
    let chosen = &claim["chosen"];
    let chosen_type = chosen["instance_type"].as_str().expect("instance type");
    let chosen_zone = chosen["zone"].as_str().expect("zone");
    let chosen_ct =
        CapacityType::parse(chosen["capacity_type"].as_str().expect("ct")).expect("a capacity type");
    assert!(
        types.iter().any(|t| t.name == chosen_type),
        "{name}: chosen type listed"
    );
    assert!(zones.contains(&chosen_zone), "{name}: chosen zone listed");
    assert!(
        capacity_types.contains(&chosen_ct),
        "{name}: chosen capacity type listed"
    );

    // Offerings within the claim, and the cheapest first.
    let price_in_claim = |it: &InstanceType| {
        it.offerings
            .iter()
            .filter(|o| zones.contains(&o.zone.as_str()) && capacity_types.contains(&o.capacity_type))
            .map(|o| o.price)
            .fold(f64::INFINITY, f64::min)
    };
    let prices: Vec<f64> = types.iter().map(|t| price_in_claim(t)).collect();
    assert!(
        prices.windows(2).all(|w| w[0] <= w[1]),
        "{name}: types cheapest first: {prices:?}"
    );
    let chosen_it = types.iter().find(|t| t.name == chosen_type).expect("chosen type");
    let chosen_offering = chosen_it
        .offerings
        .iter()
        .find(|o| o.zone == chosen_zone && o.capacity_type == chosen_ct)
        .unwrap_or_else(|| panic!("{name}: {chosen_type} is not offered in {chosen_zone} {chosen_ct}"));
    assert_eq!(
        number(&chosen["price"]),
        chosen_offering.price,
        "{name}: catalog price"
    );
    assert!(
        prices.iter().all(|p| chosen_offering.price <= *p),
        "{name}: the chosen offering is the cheapest"
    );

    // The pool's requirements hold for every type and offering kept.
    let pool_reqs = pool.nodepool.requirements().expect("valid pool");
    for it in &types {
        assert!(
            pool_reqs.intersects(&it.requirements).is_ok(),
            "{name}: {} fits the pool",
            it.name
        );
    }
    for ct in &capacity_types {
        assert!(
            pool_reqs
                .get(labels::CAPACITY_TYPE)
                .is_none_or(|r| r.has(ct.as_str())),
            "{name}: {ct} is allowed by the pool"
        );
    }

    // The node's labels at the chosen offering; pods' node constraints and tolerations hold.
    let mut labels = chosen_it.labels.clone();
    labels.extend(pool.nodepool.spec.template.metadata.labels.clone());
    labels.insert(labels::ZONE.into(), chosen_zone.into());
    labels.insert(labels::CAPACITY_TYPE.into(), chosen_ct.as_str().into());
    labels.insert(labels::NODEPOOL.into(), pool.nodepool.name().into());
    labels.insert(labels::HOSTNAME.into(), name.into());
    let taints = &pool.nodepool.spec.template.spec.taints;
    for pod in pods {
        assert!(
            pod.matches_node_labels(&labels),
            "{name}: {} matches its node",
            pod.key()
        );
        assert!(pod.tolerates(taints), "{name}: {} tolerates the pool", pod.key());
    }

    // Every listed type holds the pods and the DaemonSets that would run there.
    let daemons: Vec<&Pod> = daemonsets
        .iter()
        .filter(|d| d.tolerates(taints) && d.matches_node_labels(&labels))
        .collect();
    let mut requests = Resources::new();
    for p in pods.iter().copied().chain(daemons.iter().copied()) {
        requests.add(&p.requests);
    }
    for it in &types {
        assert!(
            it.allocatable.fits(&requests),
            "{name}: {} holds {requests:?}",
            it.name
        );
    }

    // No two host ports collide on the node.
    let ports: Vec<_> = pods
        .iter()
        .copied()
        .chain(daemons.iter().copied())
        .flat_map(|p| p.host_ports.iter())
        .collect();
    for (i, a) in ports.iter().enumerate() {
        for b in &ports[i + 1..] {
            assert!(!a.conflicts(b), "{name}: host port {} is bound twice", a.port);
        }
    }
    labels
}

/// Zones where the pool can launch some type.
fn pool_zones(pool: &PoolInput) -> Vec<String> {
    let reqs = pool.nodepool.requirements().expect("valid pool");
    let mut zones: Vec<String> = pool
        .instance_types
        .iter()
        .filter(|it| reqs.intersects(&it.requirements).is_ok())
        .flat_map(|it| {
            it.offerings
                .iter()
                .filter(|o| {
                    reqs.get(labels::CAPACITY_TYPE)
                        .is_none_or(|r| r.has(o.capacity_type.as_str()))
                })
                .map(|o| o.zone.clone())
        })
        .collect();
    zones.sort();
    zones.dedup();
    zones
}
