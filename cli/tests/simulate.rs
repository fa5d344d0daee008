//! `nodewright simulate --status-every`: the fleet view during a simulation, as JSON and as a
//! table, with the report's JSON otherwise unchanged.

use std::process::Command;

use serde_json::Value;

fn simulate(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_nodewright"))
        .arg("simulate")
        .args(args)
        .output()
        .expect("the binary runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn the_fleet_is_shown_every_five_minutes_with_nodes_prices_and_requests() {
    let json: Value =
        serde_json::from_str(&simulate(&["--status-every", "5m", "--output", "json"])).expect("JSON");
    let status = json["status"].as_array().expect("status snapshots");
    assert_eq!(status[0]["at"], "05:00");
    let fleet = &status[0]["fleet"];
    let nodes = fleet["nodes"].as_array().expect("nodes");
    assert!(!nodes.is_empty(), "{fleet}");
    for n in nodes {
        assert!(n["instance_type"].as_str().is_some_and(|t| !t.is_empty()), "{n}");
        assert!(n["price_per_hour"].as_f64().is_some_and(|p| p > 0.0), "{n}");
        assert!(n["cpu_allocatable_millis"].as_i64().is_some_and(|c| c > 0), "{n}");
    }
    let total: f64 = nodes.iter().filter_map(|n| n["price_per_hour"].as_f64()).sum();
    let reported = fleet["totals"]["price_per_hour"].as_f64().expect("total");
    assert!((total - reported).abs() < 1e-9);

    let table = simulate(&["--status-every", "5m"]);
    assert!(table.contains("status at 05:00"), "{table}");
    assert!(table.contains("NODE") && table.contains("$/H"), "{table}");
}

#[test]
fn without_the_flag_the_report_json_has_no_status() {
    let json: Value = serde_json::from_str(&simulate(&["--output", "json"])).expect("JSON");
    assert!(json.get("status").is_none());
    assert!(json.get("summary").is_some());
}

#[test]
fn a_status_interval_that_is_not_a_duration_is_refused_with_why() {
    let out = Command::new(env!("CARGO_BIN_EXE_nodewright"))
        .args(["simulate", "--status-every", "often"])
        .output()
        .expect("the binary runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--status-every"), "{err}");
}
