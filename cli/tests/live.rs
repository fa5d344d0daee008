//! The live commands (`plan --cluster`, `status`, `history`) end to end: the built binary
//! against moto (EC2, DynamoDB, through `AWS_ENDPOINT_URL`) and the fake Kubernetes API server
//! (through `--kubeconfig`), over a cluster the real provisioner and sweeper handlers worked on.
#![cfg(feature = "live")]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use k8s_openapi::api::core::v1::Node;
use nodewright_aws::testing::Moto;
use nodewright_core::nodeclaim::ClaimState;
use nodewright_core::ports::ClaimStore;
use nodewright_fake_kube::RequestMatcher;
use nodewright_tests::{World, getting_started};
use serde_json::{Value, json};

/// A kubeconfig whose current context is the world's fake API server, which then reports the
/// Kubernetes version the world's functions were configured with (the AMIs resolve by it).
fn kubeconfig(w: &World) -> PathBuf {
    let minor = nodewright_tests::KUBERNETES_VERSION
        .split_once('.')
        .and_then(|(_, minor)| minor.parse().ok())
        .expect("1.<minor>");
    w.kube.set_minor_version(minor);
    let path = std::env::temp_dir().join(format!(
        "nodewright-cli-{}-{}.kubeconfig",
        w.name,
        std::process::id()
    ));
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\nusers:\n- name: fake\n  user:\n    token: test\n",
        w.kube.url()
    );
    std::fs::write(&path, text).expect("write the kubeconfig");
    path
}

/// The binary, with AWS pointed at moto (and nothing from the machine's own AWS setup).
fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nodewright"));
    command
        .args(args)
        .env("AWS_ENDPOINT_URL", Moto::shared().endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN");
    command
}

/// Runs `nodewright <command> --cluster <world> --kubeconfig … --table … <args>`; the fake API
/// server keeps serving on the runtime's workers meanwhile.
async fn nodewright(w: &World, subcommand: &str, args: &[&str]) -> Output {
    let config = kubeconfig(w);
    let table = format!("{}-claims", w.name);
    let mut all = vec![
        subcommand.to_string(),
        "--cluster".into(),
        w.name.clone(),
        "--kubeconfig".into(),
        config.display().to_string(),
        "--table".into(),
        table,
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        command(&refs).output().expect("the binary runs")
    })
    .await
    .expect("joined")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8")
}

fn json_of(output: &Output) -> Value {
    let text = stdout(output);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A pool that consolidates at once, whatever the budgets.
fn consolidate_at_once(w: &World) {
    for mut object in getting_started(&w.name, 1000) {
        if object["kind"] == "NodePool" {
            object["spec"]["disruption"]["consolidateAfter"] = json!("0s");
            object["spec"]["disruption"]["budgets"] = json!([{"nodes": "100%"}]);
            w.kube.insert(&object).expect("pool");
        }
    }
}

/// Pods that each want a node of their own.
fn spread_pods(w: &World, app: &str, count: usize, cpu: &str) {
    w.create_pending_pods_with(
        app,
        count,
        cpu,
        json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "kubernetes.io/hostname"}
        ]}}}),
    );
}

/// A provisioning round, the kubelet, a pass that registers and initializes the nodes, and
/// the kube-scheduler binding the pods.
async fn provision_and_join(w: &World) {
    w.run_schedule().await;
    w.kubelet().await;
    w.run_schedule().await;
    w.run_schedule().await;
    w.kube.schedule_pending().expect("scheduler");
    // Under load an instance can still be pending when the kubelet first looks: let it join.
    for _ in 0..5 {
        if !w
            .kube
            .list::<k8s_openapi::api::core::v1::Pod>(Some("default"))
            .iter()
            .any(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_none_or(str::is_empty)
            })
        {
            return;
        }
        w.kubelet().await;
        w.run_schedule().await;
        w.run_schedule().await;
        w.kube.schedule_pending().expect("scheduler");
    }
}

fn writes(w: &World) -> Vec<String> {
    w.kube
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_against_a_live_cluster_plans_the_pending_pods_and_launches_nothing() {
    let w = World::new("cli-plan", 1000).await;
    w.create_pending_pods("web", 3, "1");
    w.kube.clear_requests();

    let plan = json_of(&nodewright(&w, "plan", &["-o", "json"]).await);
    let claims = plan["nodeclaims"].as_array().expect("nodeclaims");
    assert!(!claims.is_empty(), "{plan:#}");
    let mut pods: Vec<&str> = claims
        .iter()
        .flat_map(|c| c["pods"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    pods.sort();
    assert_eq!(
        pods,
        ["default/web-0", "default/web-1", "default/web-2"],
        "{plan:#}"
    );
    assert_eq!(claims[0]["nodepool"], "default");
    assert!(plan["cost_per_hour"].as_f64().unwrap_or(0.0) > 0.0, "{plan:#}");
    assert_eq!(plan["unschedulable"], json!([]));

    let table = stdout(&nodewright(&w, "plan", &[]).await);
    assert!(table.starts_with("NODECLAIM  NODEPOOL"), "{table}");
    assert!(table.contains("default-1  default"), "{table}");
    assert!(table.contains("new node(s) at $"), "{table}");

    // Nothing launched, recorded or written.
    assert!(w.instances().await.is_empty(), "an instance was launched");
    assert!(
        w.store.list_live().await.expect("claims").is_empty(),
        "a claim was written"
    );
    assert!(
        w.store
            .audit_records(0, i64::MAX / 2)
            .await
            .expect("audit")
            .is_empty(),
        "an audit row was written"
    );
    assert_eq!(writes(&w), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_disruption_proposes_the_node_left_underused_and_changes_nothing() {
    let w = World::new("cli-disrupt", 1000).await;
    consolidate_at_once(&w);
    // A 6-CPU batch pod and two small web pods share one node; the batch job then ends.
    w.create_pending_pods("batch", 1, "6");
    w.create_pending_pods("web", 2, "500m");
    provision_and_join(&w).await;
    assert_eq!(w.bound_pods(), 3);
    let before = w.store.list_live().await.expect("claims");
    let [claim] = before.as_slice() else {
        panic!("one node: {before:?}");
    };
    assert_eq!(claim.state, ClaimState::Initialized);
    let node = claim.node_name.clone().expect("registered");
    w.kube
        .delete_object("pods", Some("default"), "batch-0")
        .expect("delete pod");
    let instances = w.instances().await.len();
    w.kube.clear_requests();

    let plan = json_of(&nodewright(&w, "plan", &["--disruption", "-o", "json"]).await);
    let decisions = plan["decisions"].as_array().expect("decisions");
    assert_eq!(decisions.len(), 1, "{plan:#}");
    assert_eq!(decisions[0]["reason"], "underutilized", "{plan:#}");
    assert_eq!(decisions[0]["nodes"][0]["node"], node.as_str(), "{plan:#}");
    assert_eq!(decisions[0]["nodes"][0]["nodeclaim"], claim.id.as_str());
    assert_eq!(decisions[0]["nodes"][0]["pods"].as_array().map(Vec::len), Some(2));
    let savings = plan["savings_per_hour"].as_f64().unwrap_or(0.0);
    assert!(savings > 0.0, "{plan:#}");
    // The replacement is the cheaper node the two web pods fit on.
    let replacement = &decisions[0]["replacements"][0];
    assert!(
        replacement["price"].as_f64().unwrap_or(f64::MAX)
            < decisions[0]["nodes"][0]["price"].as_f64().unwrap_or(0.0),
        "{plan:#}"
    );

    let table = stdout(&nodewright(&w, "plan", &["--disruption"]).await);
    assert!(table.starts_with("REASON"), "{table}");
    assert!(table.contains(&format!("underutilized  {node}")), "{table}");
    assert!(
        table.contains(&format!("1 disruption(s) of 1 node(s), saving ${savings:.4}/h")),
        "{table}"
    );

    // Decided, not done: the claim is as it was, no replacement launched, nothing written.
    let after = w.store.list_live().await.expect("claims");
    assert_eq!(after, before);
    assert_eq!(w.instances().await.len(), instances);
    assert_eq!(writes(&w), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_each_node_with_its_pods_and_the_claims_in_flight() {
    let w = World::new("cli-status", 1000).await;
    spread_pods(&w, "web", 2, "1");
    provision_and_join(&w).await;
    assert_eq!(w.bound_pods(), 2);
    // One more launch whose node has not joined yet.
    w.create_pending_pods("batch", 1, "6");
    w.run_schedule().await;
    let claims = w.store.list_live().await.expect("claims");
    assert_eq!(claims.len(), 3, "{claims:?}");

    let status = json_of(&nodewright(&w, "status", &["-o", "json"]).await);
    let nodes = status["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2, "{status:#}");
    for row in nodes {
        assert_eq!(row["pods"], 1, "{row}");
        assert_eq!(row["state"], "initialized", "{row}");
        assert_eq!(row["cpu_requested_millis"], 1000, "{row}");
        assert!(
            row["cpu_allocatable_millis"].as_i64().unwrap_or(0) > 1000,
            "{row}"
        );
        assert!(row["price_per_hour"].as_f64().unwrap_or(0.0) > 0.0, "{row}");
        assert!(!row["instance_type"].as_str().unwrap_or("").is_empty(), "{row}");
    }
    assert_eq!(
        status["in_flight"].as_array().map(Vec::len),
        Some(1),
        "{status:#}"
    );
    assert_eq!(status["in_flight"][0]["pods_planned"], 1);
    assert_eq!(status["totals"]["nodes"], 2);
    assert_eq!(status["totals"]["in_flight"], 1);
    let total: f64 = nodes.iter().filter_map(|r| r["price_per_hour"].as_f64()).sum();
    assert!((status["totals"]["price_per_hour"].as_f64().unwrap_or(0.0) - total).abs() < 1e-9);

    let table = stdout(&nodewright(&w, "status", &[]).await);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("2 nodes, $"), "{table}");
    assert!(lines[0].ends_with("1 in flight"), "{table}");
    assert!(lines[1].starts_with("NODE "), "{table}");
    for row in nodes {
        let name = row["name"].as_str().expect("name");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(name) && l.contains("initialized") && l.contains('█')),
            "{table}"
        );
    }
    assert!(table.contains("in flight: nodeclaim/default-"), "{table}");

    // Watching, piped: one JSON document a line, no screen clearing, until stopped.
    let config = kubeconfig(&w);
    let table_name = format!("{}-claims", w.name);
    let args = [
        "status",
        "--cluster",
        &w.name,
        "--kubeconfig",
        &config.display().to_string(),
        "--table",
        &table_name,
        "--watch",
        "1",
        "-o",
        "json",
    ]
    .map(str::to_string);
    let lines = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = command(&refs)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary runs");
        let out = child.stdout.take().expect("piped");
        let lines: Vec<String> = BufReader::new(out)
            .lines()
            .take(2)
            .map(|l| l.expect("line"))
            .collect();
        child.kill().expect("stop watching");
        let _ = child.wait();
        lines
    })
    .await
    .expect("joined");
    assert_eq!(lines.len(), 2);
    for line in lines {
        let snapshot: Value = serde_json::from_str(&line).expect("one JSON document a line");
        assert_eq!(snapshot["totals"]["nodes"], 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lists_the_rounds_launches_with_their_nodes_and_filters_them() {
    let w = World::new("cli-history", 1000).await;
    spread_pods(&w, "web", 2, "1");
    provision_and_join(&w).await;
    let claims = w.store.list_live().await.expect("claims");
    assert_eq!(claims.len(), 2);

    let all = json_of(&nodewright(&w, "history", &["-o", "json"]).await);
    let rows = all.as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{all:#}");
    for row in rows {
        assert_eq!(row["action"], "launch", "{row}");
        assert_eq!(row["actor"], "provisioner", "{row}");
        assert_eq!(row["reason"], "1 pending pods", "{row}");
        assert!(row["delta_per_hour"].as_f64().unwrap_or(0.0) > 0.0, "{row}");
        let claim = claims
            .iter()
            .find(|c| row["nodeclaim"] == c.id.as_str())
            .expect("a row per claim");
        assert_eq!(row["node"].as_str(), claim.node_name.as_deref(), "{row}");
        assert!(row["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{row}");
    }

    let table = stdout(&nodewright(&w, "history", &["--since", "1h"]).await);
    assert!(table.starts_with("TIME"), "{table}");
    assert!(table.contains("launch"), "{table}");
    assert!(
        table
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("2 record(s) from ")),
        "{table}"
    );

    let one = &claims[0];
    let by_claim = json_of(&nodewright(&w, "history", &["--claim", &one.id, "-o", "json"]).await);
    assert_eq!(by_claim.as_array().map(Vec::len), Some(1), "{by_claim:#}");
    assert_eq!(by_claim[0]["nodeclaim"], one.id.as_str());
    let node = one.node_name.clone().expect("registered");
    let by_node = json_of(&nodewright(&w, "history", &["--node", &node, "-o", "json"]).await);
    assert_eq!(by_node.as_array().map(Vec::len), Some(1), "{by_node:#}");
    assert_eq!(by_node[0]["node"], node.as_str());
    let by_reason = json_of(&nodewright(&w, "history", &["--reason", "PENDING", "-o", "json"]).await);
    assert_eq!(by_reason.as_array().map(Vec::len), Some(2), "{by_reason:#}");
    let none = json_of(&nodewright(&w, "history", &["--reason", "underutilized", "-o", "json"]).await);
    assert_eq!(none, json!([]));
    let before = json_of(
        &nodewright(
            &w,
            "history",
            &[
                "--since",
                "2020-01-01T00:00:00Z",
                "--until",
                "2020-01-02T00:00:00Z",
                "-o",
                "json",
            ],
        )
        .await,
    );
    assert_eq!(before, json!([]));

    let unknown = nodewright(&w, "history", &["--node", "ip-10-9-9-9.ec2.internal"]).await;
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("no claim in the table became node ip-10-9-9-9.ec2.internal"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_list_and_an_unreachable_cluster_say_what_to_do() {
    let w = World::new("cli-errors", 1000).await;
    w.kube
        .fail_next(RequestMatcher::any().path_prefix("/api/v1/nodes"), 403, 10);
    let forbidden = nodewright(&w, "status", &[]).await;
    assert!(!forbidden.status.success());
    let stderr = String::from_utf8_lossy(&forbidden.stderr);
    assert!(stderr.contains("forbids you to list nodes"), "{stderr}");
    assert!(stderr.contains("kubectl auth can-i list nodes"), "{stderr}");

    // Nothing listens on port 1.
    let config = std::env::temp_dir().join(format!(
        "nodewright-cli-unreachable-{}.kubeconfig",
        std::process::id()
    ));
    std::fs::write(
        &config,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: http://127.0.0.1:1\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: gone\ncurrent-context: gone\nusers:\n- name: gone\n  user:\n    token: test\n",
    )
    .expect("kubeconfig");
    let path = config.display().to_string();
    let unreachable = tokio::task::spawn_blocking(move || {
        command(&["status", "--cluster", "gone", "--kubeconfig", &path])
            .output()
            .expect("the binary runs")
    })
    .await
    .expect("joined");
    assert!(!unreachable.status.success());
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(
        stderr.contains("cannot reach the Kubernetes API at http://127.0.0.1:1"),
        "{stderr}"
    );
}

#[test]
fn every_command_has_help_with_an_example() {
    for subcommand in [
        "plan",
        "status",
        "history",
        "simulate",
        "catalog",
        "convert",
        "bench",
        "uninstall",
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_nodewright"))
            .args([subcommand, "--help"])
            .output()
            .expect("the binary runs");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{subcommand}: {help}");
        assert!(help.contains("Examples:"), "{subcommand}: {help}");
        if ["plan", "status", "history", "uninstall"].contains(&subcommand) {
            assert!(help.contains("--cluster"), "{subcommand}: {help}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_drains_and_terminates_every_node_and_keeps_the_functions_from_launching_again() {
    let w = World::new("cli-uninstall", 1000).await;
    spread_pods(&w, "web", 2, "1");
    provision_and_join(&w).await;
    assert_eq!(w.instances().await.len(), 2);
    assert_eq!(w.bound_pods(), 2);

    let refused = nodewright(&w, "uninstall", &[]).await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert_eq!(w.instances().await.len(), 2, "nothing happens without --yes");

    let instances: Vec<String> = w.instances().await.into_iter().map(|i| i.id).collect();
    let output = nodewright(&w, "uninstall", &["--yes", "--interval", "1", "-o", "json"]).await;
    let summary = json_of(&output);
    let mut terminated: Vec<String> =
        serde_json::from_value(summary["instances_terminated"].clone()).expect("a list");
    terminated.sort();
    let mut launched = instances.clone();
    launched.sort();
    assert_eq!(terminated, launched, "{summary}");
    assert!(summary["left"].to_string().contains("sam delete"), "{summary}");
    assert!(w.instances().await.is_empty(), "no instance of ours is left");
    assert!(
        w.store.list_live().await.expect("claims").is_empty(),
        "every claim closed"
    );
    assert!(w.kube.list::<Node>(None).is_empty(), "the Nodes are deleted");
    // Pods the drain evicted come back pending; the functions do not launch for them while the
    // uninstall holds the lease, until it is handed back.
    w.create_pending_pods("after", 1, "1");
    let report = w.run_schedule().await;
    assert_eq!(report["launched"], 0, "{report}");
    let aborted = nodewright(&w, "uninstall", &["--abort"]).await;
    stdout(&aborted);
    let report = w.run_schedule().await;
    assert!(report["launched"].as_u64().is_some_and(|n| n > 0), "{report}");
}
