//! Measures the time from the first webhook call to the first CreateFleet moto receives, in the
//! end-to-end world, for a number of pending pods.
//!
//! ```text
//! cargo run --release -p nodewright-tests --bin e2e-latency -- [PODS...] [--runs N]
//! ```
//!
//! Each run is a fresh cluster: its pods become Unschedulable, every pod's AdmissionReview goes
//! through the webhook handler, the provision queue's messages go to the provisioner handler as
//! the SQS event, and moto's call log gives the moment CreateFleet arrived. "Warm" runs fetch
//! the catalog first, as a warm Lambda has it cached; "cold" runs include building it from
//! moto's DescribeInstanceTypes, offerings and spot prices. The queue's delivery delay (the
//! batch window) and Lambda's SQS polling are not in these numbers: in production add them.

use std::time::{SystemTime, UNIX_EPOCH};

use nodewright_aws::testing::Moto;
use nodewright_core::ports::{Cloud, Cluster};
use nodewright_tests::{World, median};
use serde_json::json;

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or_default()
}

struct Run {
    to_create_fleet_ms: f64,
    webhook_ms: f64,
    instances: usize,
}

async fn run(name: &str, pods: usize, warm: bool) -> Run {
    // A limit no measurement reaches: the point is latency, not the pool's ceiling.
    let w = World::new(name, 100_000).await;
    w.create_pending_pods("inflate", pods, "1");
    if warm {
        let (classes, _) = w
            .provisioner
            .cluster
            .list_nodeclasses()
            .await
            .expect("nodeclasses");
        let class = classes.first().expect("a node class");
        w.provisioner.cloud.catalog(class).await.expect("catalog");
    }
    let start = now_ms();
    let statuses = w.deliver_admission_reviews().await;
    let webhook_ms = now_ms() - start;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let event = w.take_sqs_event().await;
    w.run_provisioner(event).await;
    let create_fleet = Moto::shared()
        .calls()
        .into_iter()
        .find(|c| c.action == "CreateFleet" && c.at_ms >= start)
        .expect("a CreateFleet after the first webhook call");
    Run {
        to_create_fleet_ms: create_fleet.at_ms - start,
        webhook_ms,
        instances: w.instances().await.len(),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut runs = 5usize;
    let mut sizes = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--runs" {
            runs = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("--runs needs a whole number");
                std::process::exit(2)
            });
            i += 2;
            continue;
        }
        match args[i].parse::<usize>() {
            Ok(n) if n > 0 => sizes.push(n),
            _ => {
                eprintln!("usage: e2e-latency [PODS...] [--runs N]   (got {:?})", args[i]);
                std::process::exit(2);
            }
        }
        i += 1;
    }
    if sizes.is_empty() {
        sizes = vec![20, 1000];
    }
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let mut results = Vec::new();
    for &pods in &sizes {
        for warm in [true, false] {
            let mut to_fleet = Vec::new();
            let mut webhook = Vec::new();
            let mut instances = 0;
            for r in 0..runs {
                let name = format!("lat-{stamp}-{pods}-{}-{r}", if warm { "w" } else { "c" });
                let run = run(&name, pods, warm).await;
                to_fleet.push(run.to_create_fleet_ms);
                webhook.push(run.webhook_ms);
                instances = run.instances;
            }
            let result = json!({
                "pods": pods,
                "catalog": if warm { "warm" } else { "cold" },
                "runs": runs,
                "median_ms_webhook_to_create_fleet": (median(to_fleet.clone()) * 10.0).round() / 10.0,
                "min_ms": (to_fleet.iter().copied().fold(f64::INFINITY, f64::min) * 10.0).round() / 10.0,
                "max_ms": (to_fleet.iter().copied().fold(0.0, f64::max) * 10.0).round() / 10.0,
                "median_ms_all_reviews_through_webhook": (median(webhook) * 10.0).round() / 10.0,
                "instances_launched": instances,
            });
            println!("{result}");
            results.push(result);
        }
    }
}
