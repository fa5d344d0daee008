//! The CRDs under `infra/crds/`: the checked-in files are what the core's types generate, the
//! schemas are structural, they accept Karpenter's getting-started manifests and every NodePool
//! and EC2NodeClass among the fixtures, and they agree with serde field by field.
#![cfg(feature = "schema")]

use std::path::{Path, PathBuf};

use nodewright_core::api::{Ec2NodeClass, NodePool};
use nodewright_manifests::convert_documents;
use nodewright_manifests::crd::{self, Crd, REGENERATE, validate};
use nodewright_manifests::yaml;
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn crd_for(kind: &str) -> Crd {
    match kind {
        "NodePool" => crd::nodepool_crd(),
        "EC2NodeClass" => crd::ec2nodeclass_crd(),
        other => panic!("no CRD for {other}"),
    }
}

#[test]
fn the_checked_in_crds_are_what_the_types_generate() {
    let dir = repo().join("infra/crds");
    let mut stale = Vec::new();
    for c in crd::crds() {
        let path = dir.join(c.file_name);
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        if on_disk != c.to_yaml() {
            stale.push(format!("infra/crds/{}", c.file_name));
        }
    }
    assert!(
        stale.is_empty(),
        "{} differ from what shared/core/src/api.rs generates; regenerate them with\n  {REGENERATE}\nand commit the result",
        stale.join(", ")
    );
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("infra/crds exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected: Vec<String> = crd::crds().iter().map(|c| c.file_name.to_string()).collect();
    expected.sort();
    assert_eq!(
        files, expected,
        "infra/crds holds only the generated CRDs ({REGENERATE})"
    );
}

#[test]
fn the_crds_name_the_resources_as_karpenter_does() {
    let np = crd::nodepool_crd().object;
    assert_eq!(np["metadata"]["name"], "nodepools.karpenter.sh");
    assert_eq!(np["spec"]["scope"], "Cluster");
    assert_eq!(np["spec"]["names"]["plural"], "nodepools");
    assert_eq!(np["spec"]["names"]["categories"], json!(["karpenter"]));
    assert!(np["spec"]["names"].get("shortNames").is_none());
    let nc = crd::ec2nodeclass_crd().object;
    assert_eq!(nc["metadata"]["name"], "ec2nodeclasses.karpenter.k8s.aws");
    assert_eq!(nc["spec"]["names"]["kind"], "EC2NodeClass");
    assert_eq!(nc["spec"]["names"]["shortNames"], json!(["ec2nc", "ec2ncs"]));
    for c in [np, nc] {
        let versions = c["spec"]["versions"].as_array().expect("versions");
        assert_eq!(versions.len(), 1);
        let v = &versions[0];
        assert_eq!(
            (&v["name"], &v["served"], &v["storage"]),
            (&json!("v1"), &json!(true), &json!(true))
        );
        assert_eq!(v["subresources"], json!({"status": {}}));
    }
}

/// Every node typed (or int-or-string, or free-form), no references, `properties` and
/// `additionalProperties` never together, and free-form JSON exactly where the types hold it.
#[test]
fn the_schemas_are_structural() {
    fn walk(schema: &Value, path: &str, free_form: &mut Vec<String>) {
        let obj = schema
            .as_object()
            .unwrap_or_else(|| panic!("{path}: not an object schema"));
        for key in obj.keys() {
            assert!(
                !key.starts_with('$')
                    && !["definitions", "oneOf", "allOf", "not", "nullable", "default"]
                        .contains(&key.as_str()),
                "{path}: {key}"
            );
        }
        let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&json!(true));
        let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
        assert!(
            obj.contains_key("type") || int_or_string || preserve,
            "{path}: no type"
        );
        assert!(
            !(int_or_string && obj.contains_key("type")),
            "{path}: int-or-string with a type"
        );
        assert!(
            !(obj.contains_key("properties") && obj.contains_key("additionalProperties")),
            "{path}: properties and additionalProperties"
        );
        if obj.contains_key("anyOf") {
            assert!(int_or_string, "{path}: anyOf outside int-or-string");
        }
        if preserve {
            free_form.push(path.to_string());
        }
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                walk(sub, &format!("{path}.{name}"), free_form);
            }
        }
        if let Some(items) = obj.get("items") {
            walk(items, &format!("{path}[]"), free_form);
        }
        if let Some(values) = obj.get("additionalProperties") {
            walk(values, &format!("{path}.*"), free_form);
        }
    }
    let mut np = Vec::new();
    walk(crd::nodepool_crd().schema(), "", &mut np);
    assert_eq!(np, [".status"]);
    let mut nc = Vec::new();
    walk(crd::ec2nodeclass_crd().schema(), "", &mut nc);
    nc.sort();
    assert_eq!(
        nc,
        [
            ".spec.capacityReservationSelectorTerms[]",
            ".spec.connectionTracking",
            ".spec.cpuOptions",
            ".spec.kubelet",
            ".spec.networkInterfaces[]",
            ".spec.placementGroupSelector",
            ".status",
        ]
    );
    for c in crd::crds() {
        assert_eq!(c.schema()["properties"]["metadata"], json!({"type": "object"}));
    }
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml::all_documents(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// NodePools and EC2NodeClasses anywhere in a document (a List's items, a scenario's objects).
fn config_objects(value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Object(map) => {
            let text = |k: &str| map.get(k).and_then(Value::as_str).unwrap_or_default();
            if matches!(
                text("kind"),
                "NodePool" | "EC2NodeClass" | "Provisioner" | "AWSNodeTemplate"
            ) {
                out.push(value.clone());
                return;
            }
            map.values().for_each(|v| config_objects(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| config_objects(v, out)),
        _ => {}
    }
}

fn assert_valid(object: &Value, what: &str) {
    let kind = object["kind"].as_str().expect("kind");
    let errors = validate(object, crd_for(kind).schema());
    assert!(
        errors.is_empty(),
        "{what}: {kind} {}: {errors:#?}",
        object["metadata"]["name"]
    );
}

#[test]
fn the_schemas_accept_karpenters_getting_started_manifests_and_the_fixtures() {
    let getting_started = yaml_documents(&repo().join("infra/examples/default-nodepool.yaml"));
    let kinds: Vec<&str> = getting_started
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["NodePool", "EC2NodeClass"]);
    for doc in &getting_started {
        assert_valid(doc, "infra/examples/default-nodepool.yaml");
    }

    let mut files = Vec::new();
    yaml_files(&repo().join("shared/manifests/fixtures"), &mut files);
    yaml_files(&repo().join("scenarios"), &mut files);
    let (mut direct, mut converted) = (0, 0);
    for file in &files {
        let what = file.strip_prefix(repo()).unwrap_or(file).display().to_string();
        let mut objects = Vec::new();
        for doc in yaml_documents(file) {
            config_objects(&doc, &mut objects);
        }
        let (v1, older): (Vec<Value>, Vec<Value>) = objects.into_iter().partition(|o| {
            matches!(
                o["apiVersion"].as_str(),
                Some("karpenter.sh/v1" | "karpenter.k8s.aws/v1")
            )
        });
        for object in &v1 {
            assert_valid(object, &what);
            direct += 1;
        }
        // Older objects (v1alpha5, v1beta1) as `nodewright convert` writes them for v1.
        if !older.is_empty() {
            for object in convert_documents(&older).documents {
                assert_valid(&object, &format!("{what}, converted"));
                converted += 1;
            }
        }
    }
    assert!(direct >= 2, "scenarios hold v1 NodePools ({direct} found)");
    assert!(
        converted >= 6,
        "the convert fixtures give NodePools and EC2NodeClasses ({converted} found)"
    );
}

#[test]
fn the_validator_rejects_what_the_schema_forbids() {
    let docs = yaml_documents(&repo().join("infra/examples/default-nodepool.yaml"));
    let np = &docs[0];
    let schema = crd::nodepool_crd();
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut v = np.clone();
        edit(&mut v);
        validate(&v, schema.schema()).join("; ")
    };
    let e = broken(&|v| v["spec"]["template"]["spec"]["expireAftr"] = json!("1h"));
    assert!(e.contains(".spec.template.spec.expireAftr: unknown field"), "{e}");
    let e = broken(&|v| v["spec"]["disruption"]["consolidationPolicy"] = json!("WhenUnderutilized"));
    assert!(
        e.contains("consolidationPolicy: \"WhenUnderutilized\" is not one of"),
        "{e}"
    );
    let e = broken(&|v| v["spec"]["template"]["spec"]["requirements"][0]["operator"] = json!("Bigger"));
    assert!(e.contains("requirements[0].operator"), "{e}");
    let e = broken(&|v| v["spec"]["limits"]["cpu"] = json!(true));
    assert!(e.contains("expected an integer or a string"), "{e}");
    let e = broken(&|v| v["spec"]["weight"] = json!("heavy"));
    assert!(e.contains(".spec.weight: expected integer"), "{e}");
    let e = broken(&|v| {
        v["spec"]["template"]["spec"]
            .as_object_mut()
            .expect("spec")
            .remove("nodeClassRef");
    });
    assert!(e.contains(".spec.template.spec.nodeClassRef: required"), "{e}");
    let e = broken(&|v| v["spec"]["template"]["spec"]["requirements"][0]["minValues"] = json!(-1));
    assert!(e.contains("below the minimum"), "{e}");
    // Free-form where the types are.
    assert_eq!(
        broken(&|v| v["status"] = json!({"anything": [1, {"goes": true}]})),
        ""
    );
}

const EVERY_NODEPOOL_FIELD: &str = r#"
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {name: everything}
spec:
  template:
    metadata: {labels: {team: web}, annotations: {note: x}}
    spec:
      requirements: [{key: karpenter.sh/capacity-type, operator: In, values: [spot], minValues: 1}]
      nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: default}
      taints: [{key: a, value: b, effect: NoSchedule, timeAdded: "2024-01-01T00:00:00Z"}]
      startupTaints: [{key: c, value: d, effect: NoExecute, timeAdded: "2024-01-01T00:00:00Z"}]
      expireAfter: 720h
      terminationGracePeriod: 1h
  disruption:
    consolidationPolicy: WhenEmpty
    consolidateAfter: 1m
    budgets: [{nodes: "10%", reasons: [Empty], schedule: "0 9 * * *", duration: 8h}]
  limits: {cpu: 1000, memory: 1000Gi}
  weight: 10
  replicas: 3
status: {nodes: 1}
"#;

const EVERY_EC2NODECLASS_FIELD: &str = r#"
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata: {name: everything}
spec:
  amiFamily: AL2023
  amiSelectorTerms: [{alias: al2023@latest, id: ami-1, name: n, owner: self, ssmParameter: /p, tags: {a: b}}]
  subnetSelectorTerms: [{id: subnet-1, tags: {a: b}}]
  securityGroupSelectorTerms: [{id: sg-1, name: n, tags: {a: b}}]
  capacityReservationSelectorTerms: [{id: cr-1}]
  associatePublicIPAddress: false
  role: KarpenterNodeRole
  instanceProfile: profile
  userData: echo hello
  tags: {team: web}
  kubelet: {maxPods: 58, systemReserved: {cpu: 100m}}
  blockDeviceMappings:
    - deviceName: /dev/xvda
      rootVolume: true
      ebs:
        deleteOnTermination: true
        encrypted: true
        iops: 3000
        kmsKeyID: key
        snapshotID: snap-1
        throughput: 125
        volumeInitializationRate: 100
        volumeSize: 20Gi
        volumeType: gp3
  instanceStorePolicy: RAID0
  detailedMonitoring: true
  metadataOptions: {httpEndpoint: enabled, httpProtocolIPv6: disabled, httpPutResponseHopLimit: 2, httpTokens: required}
  context: c
  ipPrefixCount: 1
  connectionTracking: {tcpEstablishedTimeout: 60}
  cpuOptions: {nestedVirtualization: enabled}
  networkInterfaces: [{deviceIndex: 0, networkCardIndex: 0, interfaceType: interface}]
  placementGroupSelector: {name: pg}
status: {conditions: []}
"#;

/// Schema properties (as JSON pointers into `value`) that `value` does not set, following the
/// first item of arrays; and the enums met on the way, with where they are.
fn uncovered(
    value: &Value,
    schema: &Value,
    pointer: &str,
    missing: &mut Vec<String>,
    enums: &mut Vec<(String, Vec<Value>)>,
) {
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        enums.push((pointer.to_string(), allowed.clone()));
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            let p = format!("{pointer}/{name}");
            match value.get(name) {
                Some(v) if !v.is_null() => uncovered(v, sub, &p, missing, enums),
                _ => missing.push(p),
            }
        }
    }
    if let (Some(items), Some(first)) = (schema.get("items"), value.get(0)) {
        uncovered(first, items, &format!("{pointer}/0"), missing, enums);
    }
}

/// serde (strict, `deny_unknown_fields`) and the schema accept the same fields and the same
/// enum values: an object setting every field parses with serde, passes the schema and sets
/// every property the schema has; every value of every enum parses with serde.
#[test]
fn the_schemas_and_serde_agree_field_by_field() {
    fn check<T: serde::de::DeserializeOwned>(yaml: &str, crd: Crd, allowed_missing: &[&str]) {
        let object: Value = yaml::from_str(yaml).expect("YAML");
        serde_json::from_value::<T>(object.clone()).expect("serde reads every field");
        assert_eq!(validate(&object, crd.schema()), Vec::<String>::new());
        let (mut missing, mut enums) = (Vec::new(), Vec::new());
        uncovered(&object, crd.schema(), "", &mut missing, &mut enums);
        missing.retain(|p| !allowed_missing.contains(&p.as_str()));
        assert_eq!(
            missing,
            Vec::<String>::new(),
            "schema properties serde was not shown"
        );
        for (pointer, allowed) in enums {
            for value in allowed {
                let mut o = object.clone();
                *o.pointer_mut(&pointer).expect("set") = value.clone();
                if let Err(e) = serde_json::from_value::<T>(o) {
                    panic!("{pointer} = {value} is in the schema's enum but serde refuses it: {e}");
                }
            }
        }
    }
    check::<NodePool>(EVERY_NODEPOOL_FIELD, crd::nodepool_crd(), &[]);
    // The pre-v1 spelling is an alias: serde refuses both spellings at once.
    check::<Ec2NodeClass>(
        EVERY_EC2NODECLASS_FIELD,
        crd::ec2nodeclass_crd(),
        &["/spec/associatePublicIpAddress"],
    );
    let old = EVERY_EC2NODECLASS_FIELD.replace("associatePublicIPAddress", "associatePublicIpAddress");
    let object: Value = yaml::from_str(&old).expect("YAML");
    serde_json::from_value::<Ec2NodeClass>(object.clone()).expect("serde reads the old spelling");
    assert_eq!(
        validate(&object, crd::ec2nodeclass_crd().schema()),
        Vec::<String>::new()
    );
}
