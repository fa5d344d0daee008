//! Measures a bootstrap's cold start: from starting the process to its first request for work
//! on the Lambda runtime API (what Lambda reports as the init duration), through the runtime API
//! emulator, with a configuration that needs no AWS call at init.
//!
//! ```text
//! cargo run --release -p nodewright-tests --bin cold-start -- webhook|provisioner BOOTSTRAP [--runs N]
//! ```
//!
//! The webhook is given its secret directly (no Secrets Manager read) and the provisioner its
//! cluster's endpoint, CA and versions (no DescribeCluster), so what is timed is the process
//! start, reading the environment, loading the SDK configuration and building the clients. The
//! process is not frozen or memory-limited as in Lambda, and the page cache is warm after the
//! first run: read the numbers as a comparison between builds on one machine.

use std::path::PathBuf;
use std::time::Duration;

use nodewright_aws::runtime_api::RuntimeApi;
use nodewright_tests::PARSEABLE_CA;

fn environment(function: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", "testing"),
        ("RUST_LOG", "warn"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let specific: &[(&str, &str)] = match function {
        "webhook" => &[
            ("NODEWRIGHT_WEBHOOK_SECRET", "cold-start-secret-0123456789"),
            (
                "NODEWRIGHT_PROVISION_QUEUE_URL",
                "https://sqs.us-east-1.amazonaws.com/123456789012/nodewright-provision.fifo",
            ),
        ],
        _ => &[
            ("NODEWRIGHT_CLUSTER_NAME", "cold-start"),
            ("NODEWRIGHT_CLAIMS_TABLE", "nodewright-cold-start-claims"),
            ("NODEWRIGHT_CLUSTER_ENDPOINT", "https://127.0.0.1:6443"),
            ("NODEWRIGHT_SERVICE_CIDR", "10.100.0.0/16"),
            ("NODEWRIGHT_KUBERNETES_VERSION", "1.32"),
        ],
    };
    env.extend(specific.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    if function != "webhook" {
        env.push(("NODEWRIGHT_CLUSTER_CA".into(), PARSEABLE_CA.into()));
    }
    env
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(function), Some(bootstrap)) = (args.first(), args.get(1)) else {
        eprintln!("usage: cold-start webhook|provisioner BOOTSTRAP [--runs N]");
        std::process::exit(2);
    };
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(11);
    let bootstrap = PathBuf::from(bootstrap);
    let env = environment(function);
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let api = RuntimeApi::start().await;
        let mut process = api.spawn(&bootstrap, &format!("nodewright-{function}"), &env);
        match api.cold_start(&mut process, Duration::from_secs(30)).await {
            Ok(init) => times.push(init.as_secs_f64() * 1000.0),
            Err(error) => {
                eprintln!("the cold start failed: {error}");
                std::process::exit(1);
            }
        }
    }
    times.sort_by(f64::total_cmp);
    let size = std::fs::metadata(&bootstrap).map(|m| m.len()).unwrap_or(0);
    println!(
        "{function}: {} bytes ({:.1} MiB); init over {runs} runs: median {:.1} ms, min {:.1} ms, max {:.1} ms",
        size,
        size as f64 / (1024.0 * 1024.0),
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
}
