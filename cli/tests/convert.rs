//! `nodewright convert` end to end: the built binary converts the fixtures in
//! `shared/manifests/fixtures/convert/`, reports what it cannot map on standard error, and
//! `nodewright plan` accepts what it writes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const FIXTURES: &str = "shared/manifests/fixtures/convert";

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the CLI sits in the workspace")
}

fn nodewright(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nodewright"))
        .current_dir(workspace())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(input)
            .expect("stdin takes the input");
    }
    child.wait_with_output().expect("the binary finishes")
}

fn fixture(name: &str) -> String {
    format!("{FIXTURES}/{name}")
}

fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes converted output where `plan -f` can read it.
fn scratch(name: &str, contents: &[u8]) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, contents).expect("scratch file written");
    path
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_converted_provisioner_and_node_template_plan_nodes_for_a_workload() {
    let out = nodewright(&["convert", "-f", &fixture("v1alpha5-provider-ref.yaml")], None);
    succeeded(&out);
    let warnings = stderr_lines(&out);
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(
        warnings
            .iter()
            .all(|w| w.starts_with("warning: Provisioner default: spec.")),
        "one line per field, naming the object and the field: {warnings:#?}"
    );
    let converted = scratch("converted-v1alpha5.yaml", &out.stdout);
    let converted = converted.to_str().expect("a UTF-8 path");

    let plan = nodewright(
        &[
            "plan",
            "-f",
            converted,
            "-f",
            &fixture("pods.yaml"),
            "--output",
            "json",
        ],
        None,
    );
    succeeded(&plan);
    let json: Value = serde_json::from_slice(&plan.stdout).expect("plan prints JSON");
    let claims = json["nodeclaims"].as_array().expect("nodeclaims");
    assert!(!claims.is_empty(), "{json:#}");
    for claim in claims {
        assert_eq!(claim["nodepool"], "default");
        assert_eq!(claim["chosen"]["capacity_type"], "spot", "{claim:#}");
    }
    assert_eq!(json["unschedulable"], serde_json::json!([]), "{json:#}");

    // The same conversion as JSON: the objects, and the warnings in the document.
    let out = nodewright(
        &[
            "convert",
            "-f",
            &fixture("v1alpha5-provider-ref.yaml"),
            "-o",
            "json",
        ],
        None,
    );
    succeeded(&out);
    assert!(stderr_lines(&out).is_empty(), "the warnings are in the JSON");
    let document: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let kinds: Vec<&str> = document["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .filter_map(|o| o["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["NodePool", "EC2NodeClass"], "{document:#}");
    assert_eq!(
        document["warnings"].as_array().map(Vec::len),
        Some(warnings.len())
    );
}

#[test]
fn standard_input_and_several_files_convert_together_and_plan_accepts_them() {
    let v1beta1 = std::fs::read(workspace().join(fixture("v1beta1-kubelet.yaml"))).expect("fixture");
    let out = nodewright(
        &[
            "convert",
            "-f",
            "-",
            "-f",
            &fixture("v1alpha5-inline-provider.yaml"),
        ],
        Some(&v1beta1),
    );
    succeeded(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "kind: NodePool\nmetadata:\n  name: general",
        "name: default-gpu",
        "alias: bottlerocket@latest",
    ] {
        assert!(text.contains(expected), "{expected}\n{text}");
    }
    let warnings = stderr_lines(&out);
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("warning: NodePool gpu: spec.template.spec.kubelet: differs")),
        "{warnings:#?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("warning: Provisioner batch: spec.provider.launchTemplate: ")),
        "{warnings:#?}"
    );
    assert!(
        !warnings.iter().any(|w| w.contains("not accepted by nodewright")),
        "{warnings:#?}"
    );
    let converted = scratch("converted-mixed.yaml", &out.stdout);
    let plan = nodewright(
        &[
            "plan",
            "-f",
            converted.to_str().expect("a UTF-8 path"),
            "--output",
            "json",
        ],
        None,
    );
    succeeded(&plan);
}

#[test]
fn input_without_karpenter_objects_is_an_error_that_says_why() {
    let out = nodewright(
        &["convert", "-f", "-"],
        Some(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n"),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: ConfigMap settings: v1 ConfigMap is not a Karpenter"),
        "{stderr}"
    );
    assert!(stderr.contains("error: no Provisioner"), "{stderr}");
}
