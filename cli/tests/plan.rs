//! `nodewright plan` end to end: the built binary on the example app in `infra/examples/plan/`,
//! its JSON checked for shape and, against the manifests, for every hard constraint (with the
//! test kit's plan checker, the one the core's property tests use).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nodewright_core::catalog::CapacityType;
use nodewright_core::resources::Resources;
use nodewright_core::scheduler::{Assignment, ChosenOffering, Plan, PlannedClaim, Unschedulable};
use nodewright_core::testing::plan_check::check_printed;
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
    let plan = plan_of(&json);
    assert!(plan.unschedulable.is_empty(), "the example fits: {json:#}");
    assert!(plan.existing.is_empty(), "the example has no nodes: {json:#}");
    if let Err(violation) = check_printed(&input, &plan) {
        panic!("{violation}\nplan: {json:#}");
    }
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

/// The plan the CLI printed, read back into the scheduler's type for the checker. What the
/// document leaves out (node classes, requests, labels, taints) stays empty: the checker takes
/// those from the pools.
fn plan_of(json: &Value) -> Plan {
    let capacity_type =
        |v: &Value| CapacityType::parse(v.as_str().expect("a string")).expect("a capacity type");
    let owned = |v: &Value| strings(v).into_iter().map(str::to_string).collect::<Vec<_>>();
    let placements = |list: &Value, host: &str| -> Vec<Assignment> {
        list.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| Assignment {
                        host: e[host].as_str().expect(host).to_string(),
                        pods: owned(&e["pods"]),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let new_claims = json["nodeclaims"]
        .as_array()
        .expect("nodeclaims")
        .iter()
        .map(|c| PlannedClaim {
            nodepool: c["nodepool"].as_str().expect("nodepool").to_string(),
            nodeclass: String::new(),
            instance_types: owned(&c["instance_types"]),
            zones: owned(&c["zones"]),
            capacity_types: c["capacity_types"]
                .as_array()
                .expect("capacity types")
                .iter()
                .map(capacity_type)
                .collect(),
            chosen: ChosenOffering {
                instance_type: c["chosen"]["instance_type"]
                    .as_str()
                    .expect("instance type")
                    .to_string(),
                zone: c["chosen"]["zone"].as_str().expect("zone").to_string(),
                capacity_type: capacity_type(&c["chosen"]["capacity_type"]),
                price: number(&c["chosen"]["price"]),
            },
            overrides: Vec::new(),
            pods: owned(&c["pods"]),
            requests: Resources::new(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            startup_taints: Vec::new(),
        })
        .collect();
    Plan {
        new_claims,
        existing: placements(&json["existing"], "node"),
        in_flight: placements(&json["in_flight"], "nodeclaim"),
        unschedulable: json["unschedulable"]
            .as_array()
            .expect("unschedulable")
            .iter()
            .map(|u| Unschedulable {
                pod: u["pod"].as_str().expect("pod").to_string(),
                reason: u["reason"].as_str().expect("reason").to_string(),
            })
            .collect(),
        cost_per_hour: number(&json["cost_per_hour"]),
        lower_bound_per_hour: number(&json["lower_bound_per_hour"]),
    }
}
