//! Scenario files: the embedded demo parses, and mistakes are errors that name the field.

use std::path::PathBuf;

use nodewright_core::resources::ResourceName;
use nodewright_sim::{Error, Scenario};

fn parse(yaml: &str) -> Result<Scenario, Error> {
    Scenario::parse(yaml, "test.yaml", &|path| {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            path.to_string(),
        ))
    })
}

/// The error with its causes, as the CLI prints it.
fn message(e: &Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        out.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    out
}

const MINIMAL: &str = "name: t\nend: 1m\n";

#[test]
fn the_inflate_scenario_parses() {
    let s = Scenario::inflate().expect("the embedded demo parses");
    assert_eq!(s.name, "inflate");
    assert_eq!(s.boot_delay_ms, 45_000);
    assert_eq!(s.end_ms, 25 * 60_000);
    assert_eq!(
        s.nodepools.iter().map(|p| p.name()).collect::<Vec<_>>(),
        ["default"]
    );
    assert_eq!(s.nodepools[0].consolidate_after().expect("valid"), Some(60_000));
    assert_eq!(
        s.nodeclasses.iter().map(|c| c.name()).collect::<Vec<_>>(),
        ["default"]
    );
    let [inflate] = s.workloads.as_slice() else {
        panic!("one workload: {:?}", s.workloads);
    };
    assert_eq!((inflate.name.as_str(), inflate.replicas), ("inflate", 0));
    assert_eq!(inflate.template.requests.cpu(), 1_000);
    assert_eq!(inflate.template.requests.get(ResourceName::Pods), 1);
    let scale: Vec<(i64, u32)> = s
        .steps
        .iter()
        .map(|st| (st.at_ms / 60_000, st.scale["inflate"]))
        .collect();
    assert_eq!(scale, [(0, 10), (5, 20), (10, 1), (15, 0)]);
}

#[test]
fn the_inflate_file_on_disk_parses_the_same_as_the_embedded_copy() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/inflate.yaml");
    let from_disk = Scenario::from_file(&path).expect("parses with its include");
    let embedded = Scenario::inflate().expect("parses");
    assert_eq!(from_disk.nodepools, embedded.nodepools);
    assert_eq!(from_disk.nodeclasses, embedded.nodeclasses);
    assert_eq!(from_disk.steps, embedded.steps);
}

#[test]
fn every_scenario_in_the_scenarios_folder_parses() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("scenarios folder") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            Scenario::from_file(&path).unwrap_or_else(|e| panic!("{}", message(&e)));
            seen += 1;
        }
    }
    assert!(seen >= 1);
}

#[test]
fn an_unknown_field_is_an_error_naming_it() {
    let err = parse(&format!("{MINIMAL}bootDelai: 30s\n")).expect_err("unknown");
    assert!(message(&err).contains("bootDelai"), "{}", message(&err));
    assert!(message(&err).starts_with("test.yaml"), "{}", message(&err));

    let err = parse(&format!("{MINIMAL}workloads:\n  - name: w\n    cpu: 1\n")).expect_err("unknown");
    let m = message(&err);
    assert!(m.contains("workloads[0]") && m.contains("`cpu`"), "{m}");
}

#[test]
fn a_bad_value_is_an_error_naming_its_field() {
    let cases = [
        ("name: t\nend: soon", "end"),
        ("name: ''\nend: 1m", "name"),
        ("name: t\nend: 1m\nbootDelay: 45 seconds", "bootDelay"),
        (
            "name: t\nend: 1m\nworkloads: [{name: w, requests: {cpu: -1}}]",
            "workloads[0].requests.cpu",
        ),
        (
            "name: t\nend: 1m\nworkloads: [{name: w, requests: {memory: 1GB}}]",
            "workloads[0].requests",
        ),
        (
            "name: t\nend: 1m\nworkloads: [{name: w}, {name: w}]",
            "workloads[1].name",
        ),
        (
            "name: t\nend: 1m\nworkloads: [{name: w, topologySpread: [{topologyKey: z, maxSkew: 0}]}]",
            "workloads[0].topologySpread[0].maxSkew",
        ),
        (
            "name: t\nend: 1m\nworkloads: [{name: w, tolerations: [{operator: Equal, value: x}]}]",
            "workloads[0].tolerations[0].key",
        ),
        (
            "name: t\nend: 1m\nsteps: [{at: 0s, scale: {nope: 1}}]",
            "steps[0].scale.nope",
        ),
        ("name: t\nend: 1m\nsteps: [{at: 2m, scale: {}}]", "steps[0].at"),
        ("name: t\nend: 1m\nsteps: [{at: 0s}]", "steps[0]"),
        (
            "name: t\nend: 1m\nsteps: [{at: 0s, outOfCapacity: [{zone: a, size: big}]}]",
            "size",
        ),
    ];
    for (yaml, field) in cases {
        let m = message(&parse(yaml).expect_err(yaml));
        assert!(m.contains(field), "{yaml}: {m}");
    }
}

#[test]
fn an_invalid_nodepool_is_reported_by_the_cores_strict_parser() {
    let yaml = format!(
        "{MINIMAL}objects:\n  - apiVersion: karpenter.sh/v1\n    kind: NodePool\n    metadata: {{name: p}}\n    \
         spec:\n      template:\n        spec:\n          nodeClassRef: {{group: karpenter.k8s.aws, kind: EC2NodeClass, name: d}}\n          \
         expireAftr: 720h\n"
    );
    let m = message(&parse(&yaml).expect_err("unknown field"));
    assert!(m.contains("objects[0]") && m.contains("expireAftr"), "{m}");

    let m =
        message(&parse(&format!("{MINIMAL}objects: [{{apiVersion: v1, kind: Secret}}]")).expect_err("kind"));
    assert!(m.contains("objects[0].kind") && m.contains("Secret"), "{m}");
}

#[test]
fn a_missing_include_is_an_error_naming_the_path() {
    let m =
        message(&parse(&format!("{MINIMAL}objects: [{{include: nodepools.yaml}}]")).expect_err("missing"));
    assert!(m.contains("nodepools.yaml"), "{m}");
    let m = message(
        &parse(&format!(
            "{MINIMAL}objects: [{{include: a.yaml, kind: NodePool}}]"
        ))
        .expect_err("mixed"),
    );
    assert!(m.contains("objects[0]"), "{m}");
}

#[test]
fn a_daemonset_manifest_gives_its_pods_overhead() {
    let yaml = format!(
        "{MINIMAL}objects:\n  - apiVersion: apps/v1\n    kind: DaemonSet\n    metadata: {{name: agent, namespace: kube-system}}\n    \
         spec:\n      selector: {{matchLabels: {{app: agent}}}}\n      template:\n        metadata: {{labels: {{app: agent}}}}\n        \
         spec:\n          containers:\n            - name: agent\n              image: agent:1\n              \
         resources: {{requests: {{cpu: 100m}}, limits: {{cpu: 200m, memory: 128Mi}}}}\n            \
         - name: sidecar\n              image: sidecar:1\n              resources: {{requests: {{cpu: 50m}}}}\n          \
         tolerations: [{{operator: Exists}}]\n"
    );
    let s = parse(&yaml).expect("parses");
    let [ds] = s.daemonsets.as_slice() else {
        panic!("one daemonset");
    };
    assert_eq!(
        (ds.namespace.as_str(), ds.name.as_str()),
        ("kube-system", "agent")
    );
    assert!(ds.pod.is_daemon());
    assert_eq!(ds.pod.requests.cpu(), 150, "requests, not limits");
    assert_eq!(
        ds.pod.requests.memory(),
        128 << 20,
        "a limit stands in for a missing request"
    );
    assert_eq!(ds.pod.tolerations.len(), 1);
}

#[test]
fn a_daemonsets_sidecar_init_container_counts_as_plan_counts_it() {
    // A sidecar (an init container with restartPolicy Always) runs beside the containers, so its
    // request adds to theirs; an ordinary init container only raises the peak.
    let yaml = format!(
        "{MINIMAL}objects:\n  - apiVersion: apps/v1\n    kind: DaemonSet\n    metadata: {{name: mesh, namespace: kube-system}}\n    \
         spec:\n      selector: {{matchLabels: {{app: mesh}}}}\n      template:\n        metadata: {{labels: {{app: mesh}}}}\n        \
         spec:\n          initContainers:\n            - name: proxy\n              image: proxy:1\n              restartPolicy: Always\n              \
         resources: {{requests: {{cpu: 100m}}}}\n            - name: setup\n              image: setup:1\n              \
         resources: {{requests: {{cpu: 150m}}}}\n          containers:\n            - name: agent\n              image: agent:1\n              \
         resources: {{requests: {{cpu: 200m}}}}\n"
    );
    let s = parse(&yaml).expect("parses");
    let [ds] = s.daemonsets.as_slice() else {
        panic!("one daemonset");
    };
    assert_eq!(
        ds.pod.requests.cpu(),
        300,
        "agent 200m + sidecar 100m; setup's 250m peak is lower"
    );
}

#[test]
fn an_include_is_read_relative_to_the_scenario_file() {
    let dir = std::env::temp_dir().join(format!("nodewright-sim-include-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("manifests")).expect("temp dir");
    let getting_started =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../infra/examples/default-nodepool.yaml");
    std::fs::copy(&getting_started, dir.join("manifests/pool.yaml")).expect("copy");
    std::fs::write(
        dir.join("s.yaml"),
        "name: t\nend: 1m\nobjects: [{include: manifests/pool.yaml}]\n",
    )
    .expect("write");
    let s = Scenario::from_file(&dir.join("s.yaml")).expect("parses");
    assert_eq!((s.nodepools.len(), s.nodeclasses.len()), (1, 1));
    let err = Scenario::from_file(&dir.join("absent.yaml")).expect_err("no file");
    assert!(message(&err).contains("absent.yaml"));
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn the_cloud_section_declares_subnets_and_images_and_its_mistakes_name_their_field() {
    let s = parse(&format!(
        "{MINIMAL}cloud:\n  subnets: [{{id: subnet-a, zone: us-east-1a, tags: {{team: a}}}}]\n  \
         images: [{{id: ami-1, name: node, architecture: arm64}}]\n"
    ))
    .expect("parses");
    let subnets = s.cloud.subnets.expect("subnets");
    assert_eq!(
        (subnets[0].id.as_str(), subnets[0].zone.as_str()),
        ("subnet-a", "us-east-1a")
    );
    assert_eq!(
        s.cloud.images.expect("images")[0].architecture,
        nodewright_sim::ImageArch::Arm64
    );
    assert_eq!(
        parse(MINIMAL).expect("parses").cloud,
        nodewright_sim::CloudWorld::default()
    );

    let cases = [
        (
            "cloud: {subnets: [{id: s, zone: us-west-2a}]}",
            "cloud.subnets[0].zone",
        ),
        (
            "cloud: {subnets: [{id: s, zone: us-east-1a}, {id: s, zone: us-east-1b}]}",
            "cloud.subnets[1].id",
        ),
        ("cloud: {images: [{id: i, architecture: i386}]}", "i386"),
        (
            "cloud: {images: [{id: '', architecture: arm64}]}",
            "cloud.images[0].id",
        ),
        ("cloud: {vpcs: []}", "vpcs"),
    ];
    for (yaml, field) in cases {
        let yaml = format!("{MINIMAL}{yaml}\n");
        let m = message(&parse(&yaml).expect_err(&yaml));
        assert!(m.contains(field), "{yaml}: {m}");
    }
}
