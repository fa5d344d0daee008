//! User data per AMI family, compared with golden files in `tests/golden/`.
//!
//! A missing golden file is written from the current output and the test fails, asking for a
//! review; delete a file to regenerate it.

use std::path::PathBuf;

use nodewright_aws::testing::{aws_config, getting_started_nodeclass};
use nodewright_aws::userdata::{Bootstrap, mime};
use nodewright_core::api::{AmiFamily, Ec2NodeClass};
use nodewright_core::nodeclaim::NodeClaim;
use nodewright_core::pod::{Taint, TaintEffect};
use nodewright_core::testing::claim;

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    match std::fs::read_to_string(&path) {
        Ok(expected) => assert_eq!(
            actual,
            expected,
            "{} differs; delete it to regenerate",
            path.display()
        ),
        Err(_) => {
            std::fs::write(&path, actual).expect("write golden file");
            panic!("wrote {}; review it and run again", path.display());
        }
    }
}

fn nodeclass(kubelet: serde_json::Value, user_data: Option<&str>) -> Ec2NodeClass {
    let mut nc = getting_started_nodeclass("demo");
    nc.spec.kubelet = kubelet.as_object().cloned();
    nc.spec.user_data = user_data.map(str::to_string);
    nc
}

fn labelled_claim() -> NodeClaim {
    let mut c = claim("default-abcde").build();
    c.labels.insert("team".into(), "payments".into());
    c.labels
        .insert("node-role.kubernetes.io/worker".into(), "true".into());
    c.taints = vec![Taint::new("dedicated", Some("payments"), TaintEffect::NoSchedule)];
    c.startup_taints = vec![Taint::new(
        "example.com/agent-not-ready",
        None,
        TaintEffect::NoExecute,
    )];
    c
}

fn render(family: AmiFamily, nc: &Ec2NodeClass) -> String {
    Bootstrap::new(&aws_config("demo"), nc, &labelled_claim())
        .expect("bootstrap")
        .render(family)
        .expect("render")
}

#[test]
fn al2023_user_data_is_a_nodeconfig_with_our_labels_taints_and_kubelet_settings() {
    let nc = nodeclass(
        serde_json::json!({"maxPods": 110, "kubeReserved": {"cpu": "100m", "memory": "500Mi"}}),
        None,
    );
    golden("al2023.txt", &render(AmiFamily::AL2023, &nc));
}

#[test]
fn al2023_puts_the_users_mime_parts_first_and_our_nodeconfig_last() {
    let user = "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"//\"\n\n\
        --//\nContent-Type: text/x-shellscript; charset=\"us-ascii\"\n\n#!/bin/bash\necho \"hello from the user\"\n\
        --//\nContent-Type: application/node.eks.aws\n\napiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  kubelet:\n    config:\n      shutdownGracePeriod: 30s\n\
        --//--\n";
    let out = render(AmiFamily::AL2023, &nodeclass(serde_json::json!({}), Some(user)));
    let parts = mime::parse(&out).expect("multipart");
    assert_eq!(parts.len(), 3);
    assert!(parts[0].body.contains("hello from the user"));
    assert!(parts[1].body.contains("shutdownGracePeriod"));
    assert!(parts[2].body.contains("apiServerEndpoint"));
    golden("al2023_user_mime.txt", &out);
}

#[test]
fn al2023_wraps_a_bare_user_nodeconfig_as_a_nodeconfig_part() {
    let user = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  instance:\n    localStorage:\n      strategy: RAID0\n";
    let out = render(AmiFamily::AL2023, &nodeclass(serde_json::json!({}), Some(user)));
    let parts = mime::parse(&out).expect("multipart");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].headers[0].1, mime::NODE_CONFIG);
    assert_eq!(parts[0].body, user);
    golden("al2023_user_nodeconfig.txt", &out);
}

#[test]
fn al2_user_data_runs_the_users_script_then_bootstrap_sh() {
    let nc = nodeclass(
        serde_json::json!({"maxPods": 58, "evictionHard": {"memory.available": "5%"}}),
        Some("#!/bin/bash\necho \"tune sysctls\"\n"),
    );
    let out = render(AmiFamily::AL2, &nc);
    let parts = mime::parse(&out).expect("multipart");
    assert_eq!(parts.len(), 2);
    assert!(parts[0].body.contains("tune sysctls"));
    assert!(parts[1].body.contains("/etc/eks/bootstrap.sh 'demo'"));
    golden("al2.txt", &out);
}

#[test]
fn bottlerocket_settings_keep_the_users_keys_and_overwrite_the_cluster_identity() {
    let user = "[settings.kubernetes]\ncluster-name = \"someone-else\"\ncluster-dns-ip = \"169.254.20.10\"\n\n\
        [settings.kubernetes.node-labels]\nteam = \"overwritten\"\nextra = \"kept\"\n\n\
        [settings.host-containers.admin]\nenabled = true\n";
    let nc = nodeclass(serde_json::json!({"maxPods": 110}), Some(user));
    let out = render(AmiFamily::Bottlerocket, &nc);
    let parsed: toml::Table = out.parse().expect("toml");
    let k8s = &parsed["settings"]["kubernetes"];
    assert_eq!(k8s["cluster-name"].as_str(), Some("demo"));
    assert_eq!(k8s["cluster-dns-ip"].as_str(), Some("169.254.20.10"));
    assert_eq!(k8s["node-labels"]["team"].as_str(), Some("payments"));
    assert_eq!(k8s["node-labels"]["extra"].as_str(), Some("kept"));
    assert_eq!(
        parsed["settings"]["host-containers"]["admin"]["enabled"].as_bool(),
        Some(true)
    );
    golden("bottlerocket.txt", &out);
}

#[test]
fn the_same_inputs_give_the_same_user_data_bytes() {
    let nc = nodeclass(serde_json::json!({"maxPods": 110}), Some("#!/bin/bash\ntrue\n"));
    for family in [AmiFamily::AL2023, AmiFamily::AL2] {
        assert_eq!(render(family, &nc), render(family, &nc));
    }
}

#[test]
fn malformed_user_data_is_an_invalid_configuration() {
    let broken_mime = "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nno end\n";
    let nc = nodeclass(serde_json::json!({}), Some(broken_mime));
    let err = Bootstrap::new(&aws_config("demo"), &nc, &labelled_claim())
        .expect("bootstrap")
        .render(AmiFamily::AL2023)
        .expect_err("unterminated MIME");
    assert_eq!(err.kind, nodewright_core::ports::ErrorKind::Invalid);

    let nc = nodeclass(serde_json::json!({}), Some("this is = = not toml"));
    let err = Bootstrap::new(&aws_config("demo"), &nc, &labelled_claim())
        .expect("bootstrap")
        .render(AmiFamily::Bottlerocket)
        .expect_err("not TOML");
    assert_eq!(err.kind, nodewright_core::ports::ErrorKind::Invalid);
}
