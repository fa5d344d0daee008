//! Measures one provisioner pass over a large cluster served by the fake API server: how long
//! it takes and how much memory it needs on top of what the process already held.
//!
//! ```text
//! cargo run --release -p nodewright-tests --bin large-cluster -- [--nodes N] [--pods N] [--pending N] [--runs N]
//! ```
//!
//! The cluster: `nodes` nodes of the default pool (m5.xlarge, 4 vCPU), each full with bound
//! 1-CPU-ish pods (`pods` in all, spread evenly), and `pending` Unschedulable 1-CPU pods that
//! need new capacity. The pass lists everything (pods page by page), reconciles, runs the
//! lifecycle over every node and plans and launches in moto. Memory is the peak resident set
//! during the pass (`VmHWM`, reset through `/proc/self/clear_refs` just before it) less the
//! resident set just before: the pass's own working memory (the largest over the runs, since
//! later runs reuse memory the allocator kept). The fake API server runs in this process, so its
//! share of serving the lists is included; the Lambda would not carry it. The whole process's
//! peak, server and objects included, is printed too, as an upper bound.

use std::time::Instant;

use k8s_openapi::api::core::v1::Node;
use nodewright_fake_kube::{NodeRegistration, builders};
use nodewright_tests::{World, median};
use serde_json::json;

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn reset_peak() {
    // Writing 5 resets the peak resident set size (Linux ≥ 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

async fn build(name: &str, nodes: usize, pods: usize, pending: usize) -> World {
    let w = World::new(name, 1_000_000).await;
    let per_node = pods.saturating_sub(pending).div_ceil(nodes.max(1));
    for n in 0..nodes {
        let node = format!(
            "ip-10-{}-{}-{}.ec2.internal",
            n / 65_536,
            (n / 256) % 256,
            n % 256
        );
        let registration = NodeRegistration::new(node.clone())
            .labels([
                ("kubernetes.io/hostname", node.as_str()),
                ("kubernetes.io/arch", "amd64"),
                ("kubernetes.io/os", "linux"),
                ("node.kubernetes.io/instance-type", "m5.xlarge"),
                ("topology.kubernetes.io/zone", "us-east-1a"),
                ("karpenter.sh/nodepool", "default"),
                ("karpenter.sh/capacity-type", "on-demand"),
            ])
            .provider_id(format!("aws:///us-east-1a/i-{n:017x}"))
            .allocatable("cpu", "3920m")
            .allocatable("memory", "14Gi")
            .allocatable("pods", "58");
        w.kube.register_node(registration).expect("node");
    }
    let nodes_list: Vec<String> = w
        .kube
        .list::<Node>(None)
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    let bound = pods.saturating_sub(pending);
    let cpu = format!("{}m", 3900 / per_node.max(1));
    for i in 0..bound {
        let node = &nodes_list[i / per_node.max(1) % nodes_list.len()];
        let pod = builders::pod(&format!("app-{i}"))
            .label("app", "app")
            .owned_by("ReplicaSet", "app-rs")
            .cpu(&cpu)
            .memory("128Mi")
            .node(node)
            .running();
        w.kube.insert(&pod.json()).expect("bound pod");
    }
    w.create_pending_pods("pending", pending, "1");
    w
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|v| {
                v.parse().unwrap_or_else(|_| {
                    eprintln!("{name} needs a whole number");
                    std::process::exit(2)
                })
            })
            .unwrap_or(default)
    };
    let (nodes, pods, pending, runs) = (
        arg("--nodes", 5_000),
        arg("--pods", 50_000),
        arg("--pending", 500),
        arg("--runs", 3),
    );
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut durations = Vec::new();
    let mut memory = Vec::new();
    let mut whole = Vec::new();
    let mut launched = 0;
    for r in 0..runs {
        let w = build(&format!("large-{stamp}-{r}"), nodes, pods, pending).await;
        let before = status_kib("VmRSS:");
        reset_peak();
        let started = Instant::now();
        let response = w.run_schedule().await;
        let elapsed = started.elapsed().as_secs_f64();
        let peak = status_kib("VmHWM:");
        assert_eq!(response["ran"], json!(true), "{response}");
        launched = response["launched"].as_u64().unwrap_or(0);
        durations.push(elapsed);
        memory.push(peak.saturating_sub(before) as f64 / 1024.0);
        whole.push(peak as f64 / 1024.0);
    }
    println!(
        "{}",
        json!({
            "nodes": nodes,
            "pods": pods,
            "pending": pending,
            "runs": runs,
            "median_pass_seconds": (median(durations) * 100.0).round() / 100.0,
            // Later runs reuse memory the allocator kept from earlier ones: the largest is the
            // honest figure.
            "max_pass_peak_mib_above_baseline": (memory.iter().copied().fold(0.0, f64::max) * 10.0).round() / 10.0,
            // The whole process at the pass's peak, the fake API server and its objects included:
            // an upper bound for the function.
            "max_process_peak_mib": (whole.iter().copied().fold(0.0, f64::max) * 10.0).round() / 10.0,
            "instances_launched": launched,
        })
    );
}
