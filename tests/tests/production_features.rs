//! No test code in a production binary: the Lambda functions build the workspace's crates
//! without their `test-util` and `benchmark` features, and the CLI without `test-util` (its
//! `bench` command needs the benchmark). Read from `cargo tree` over normal dependencies, the
//! ones a release build compiles.

use std::process::Command;

/// The workspace features `package` builds with over `edges` (`features,normal`: what a
/// release build compiles), one `crate feature "name"` line each.
fn workspace_features(package: &str, edges: &str) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let out = Command::new(cargo)
        .args(["tree", "--offline", "--manifest-path", manifest, "-p", package])
        .args(["-e", edges, "--prefix", "none", "--format", "{p} {f}"])
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("nodewright-") && l.contains(" feature \""))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines.dedup();
    lines
}

fn with_feature<'l>(lines: &'l [String], feature: &str) -> Vec<&'l str> {
    let needle = format!("feature \"{feature}\"");
    lines
        .iter()
        .map(String::as_str)
        .filter(|l| l.contains(&needle))
        .collect()
}

#[test]
fn the_lambda_functions_build_without_test_support_or_the_benchmark() {
    for package in ["nodewright-provisioner", "nodewright-webhook"] {
        let lines = workspace_features(package, "features,normal");
        assert!(
            lines.iter().any(|l| l.starts_with("nodewright-core ")),
            "{package} builds the core: {lines:#?}"
        );
        assert_eq!(with_feature(&lines, "test-util"), Vec::<&str>::new(), "{package}");
        assert_eq!(with_feature(&lines, "benchmark"), Vec::<&str>::new(), "{package}");
    }
}

#[test]
fn the_cli_builds_the_benchmark_but_no_test_support() {
    let lines = workspace_features("nodewright-cli", "features,normal");
    assert_eq!(with_feature(&lines, "test-util"), Vec::<&str>::new());
    assert_ne!(with_feature(&lines, "benchmark"), Vec::<&str>::new());
    // The CLI's tests do turn the test kit on: the query would see it.
    let with_tests = workspace_features("nodewright-cli", "features");
    assert_ne!(with_feature(&with_tests, "test-util"), Vec::<&str>::new());
}
