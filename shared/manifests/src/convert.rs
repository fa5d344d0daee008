//! Karpenter's older configuration rewritten as the v1 objects nodewright reads.
//!
//! [`convert_documents`] takes `karpenter.sh/v1alpha5 Provisioner` with
//! `karpenter.k8s.aws/v1alpha1 AWSNodeTemplate` (or the Provisioner's inline `provider`), and
//! `karpenter.sh/v1beta1 NodePool` with `karpenter.k8s.aws/v1beta1 EC2NodeClass`, and returns
//! `karpenter.sh/v1 NodePool` and `karpenter.k8s.aws/v1 EC2NodeClass` documents, field by field
//! as Karpenter's own v1alpha5 → v1beta1 → v1 migrations map them. v1 objects pass through as
//! they are. It is pure: documents in, documents and [`ConvertWarning`]s out.
//!
//! Nothing is dropped silently: every field that has no place in v1 (or that nodewright does
//! not act on) gives one warning naming the object and the field. Server-populated metadata
//! (uid, resourceVersion, managedFields, …) and `status` are left out without a word. Each
//! converted object is finally parsed by the core's strict parser, and a refusal is reported.
//!
//! Where the older API's behaviour differs from v1's defaults, the converted object spells the
//! old behaviour out: a Provisioner without `ttlSecondsUntilExpired` gets `expireAfter: Never`,
//! one without consolidation or `ttlSecondsAfterEmpty` gets `WhenEmpty` after `Never`, the
//! requirements v1alpha5's webhook defaulted are written down, and a node class without
//! `metadataOptions` keeps the older hop limit of 2.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use nodewright_core::api;
use serde::Deserialize;
use serde_json::{Map, Value, json};

const PROVISIONER_API: &str = "karpenter.sh/v1alpha5";
const NODEPOOL_V1BETA1_API: &str = "karpenter.sh/v1beta1";
const NODETEMPLATE_API: &str = "karpenter.k8s.aws/v1alpha1";
const NODECLASS_V1BETA1_API: &str = "karpenter.k8s.aws/v1beta1";
const NODECLASS_GROUP: &str = "karpenter.k8s.aws";
const NODECLASS_KIND: &str = "EC2NodeClass";

/// Written where v1 needs a node role and the input names none (v1alpha1 could rely on the
/// controller's `defaultInstanceProfile`); `envsubst` fills it in.
pub const ROLE_PLACEHOLDER: &str = "$KARPENTER_NODE_ROLE";
/// Written where v1 needs an AMI selector and the input has none that v1 can express.
pub const AMI_PLACEHOLDER: &str = "ami-placeholder";

/// The AMI families v1 resolves with an alias (`al2@latest`, …).
const ALIAS_FAMILIES: &[&str] = &["AL2", "AL2023", "Bottlerocket", "Windows2019", "Windows2022"];

/// Kubelet settings v1's EC2NodeClass takes (the same set v1beta1's NodePool took).
const KUBELET_FIELDS: &[&str] = &[
    "clusterDNS",
    "maxPods",
    "podsPerCore",
    "systemReserved",
    "kubeReserved",
    "evictionHard",
    "evictionSoft",
    "evictionSoftGracePeriod",
    "evictionMaxPodGracePeriod",
    "imageGCHighThresholdPercent",
    "imageGCLowThresholdPercent",
    "cpuCFSQuota",
];

const EBS_FIELDS: &[&str] = &[
    "deleteOnTermination",
    "encrypted",
    "iops",
    "kmsKeyID",
    "snapshotID",
    "throughput",
    "volumeSize",
    "volumeType",
];

const METADATA_OPTION_FIELDS: &[&str] = &[
    "httpEndpoint",
    "httpProtocolIPv6",
    "httpPutResponseHopLimit",
    "httpTokens",
];

/// A requirement label v1beta1 dropped.
const INSTANCE_PODS: &str = "karpenter.k8s.aws/instance-pods";

/// One thing the conversion could not carry over, or changed to make the object valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertWarning {
    /// `Kind name` of the input object.
    pub object: String,
    /// The field's path in the input object (`spec.kubeletConfiguration.containerRuntime`);
    /// empty for the object as a whole.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConvertWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.object, self.message)
        } else {
            write!(f, "{}: {}: {}", self.object, self.field, self.message)
        }
    }
}

/// The converted documents (NodePools first, then EC2NodeClasses, each in input order) and
/// what could not be mapped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversion {
    pub documents: Vec<Value>,
    pub warnings: Vec<ConvertWarning>,
}

impl Conversion {
    /// The documents as one multi-document YAML stream.
    pub fn to_yaml(&self) -> Result<String, serde_yaml::Error> {
        let mut out = String::new();
        for doc in &self.documents {
            out.push_str("---\n");
            out.push_str(&serde_yaml::to_string(doc)?);
        }
        Ok(out)
    }
}

/// Every document of a YAML (or JSON) stream, merge keys applied; empty documents are skipped.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, serde_yaml::Error> {
    let mut out = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let mut value = serde_yaml::Value::deserialize(document)?;
        value.apply_merge()?;
        let value = Value::deserialize(value)?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// Converts parsed documents (see the module documentation). `kind: List` documents are read
/// item by item; documents of other kinds are left out with a warning.
pub fn convert_documents(documents: &[Value]) -> Conversion {
    let mut warnings = Vec::new();
    let mut pools: Vec<PoolOut> = Vec::new();
    let mut classes: Vec<ClassOut> = Vec::new();
    let mut items = Vec::new();
    for doc in documents {
        flatten(doc, &mut items);
    }
    for doc in items {
        let text = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or_default();
        let (api_version, kind) = (text("apiVersion"), text("kind"));
        let mut ctx = Ctx {
            object: describe(kind, doc),
            warnings: &mut warnings,
        };
        match (api_version, kind) {
            (PROVISIONER_API, "Provisioner") => {
                let (pool, class) = provisioner(&mut ctx, doc);
                if let Some(mut class) = class {
                    class.from_provider = Some(pools.len());
                    classes.push(class);
                }
                pools.push(pool);
            }
            (NODEPOOL_V1BETA1_API, "NodePool") => pools.push(nodepool_v1beta1(&mut ctx, doc)),
            (NODETEMPLATE_API, "AWSNodeTemplate") => {
                let (meta, name) = metadata(&mut ctx, doc.get("metadata"));
                let spec = object(&mut ctx, "spec", doc.get("spec").cloned()).unwrap_or_default();
                classes.push(class_v1alpha1(&mut ctx, "spec", meta, name, spec));
            }
            (NODECLASS_V1BETA1_API, "EC2NodeClass") => classes.push(nodeclass_v1beta1(&mut ctx, doc)),
            (api::NODEPOOL_API_VERSION, "NodePool") => {
                let class = doc
                    .pointer("/spec/template/spec/nodeClassRef/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                pools.push(PoolOut {
                    name: name_of(doc),
                    object: ctx.object.clone(),
                    value: doc.clone(),
                    class,
                    kubelet: None,
                    kubelet_field: "",
                    converted: false,
                });
            }
            (api::EC2NODECLASS_API_VERSION, "EC2NodeClass") => {
                let kubelet = doc.pointer("/spec/kubelet").and_then(Value::as_object).cloned();
                classes.push(ClassOut {
                    name: name_of(doc),
                    base: doc.clone(),
                    value: doc.clone(),
                    copies: Vec::new(),
                    from_provider: None,
                    kubelet: Some(kubelet),
                });
            }
            ("", _) | (_, "") => ctx.warn("", "has no apiVersion or kind; left out"),
            _ => ctx.warn(
                "",
                format!(
                    "{api_version} {kind} is not a Karpenter Provisioner, AWSNodeTemplate, \
                     NodePool or EC2NodeClass; left out"
                ),
            ),
        }
    }
    rename_provider_classes(&mut pools, &mut classes, &mut warnings);
    place_kubelets(&mut pools, &mut classes, &mut warnings);

    let mut documents: Vec<Value> = pools.into_iter().map(|p| p.value).collect();
    for class in classes {
        documents.push(class.value);
        documents.extend(class.copies);
    }
    for doc in &documents {
        check(doc, &mut warnings);
    }
    Conversion { documents, warnings }
}

// ---------------------------------------------------------------------------------------------
// Plumbing

/// The object being converted and where its warnings go.
struct Ctx<'w> {
    object: String,
    warnings: &'w mut Vec<ConvertWarning>,
}

impl Ctx<'_> {
    fn warn(&mut self, field: &str, message: impl Into<String>) {
        self.warnings.push(ConvertWarning {
            object: self.object.clone(),
            field: field.to_string(),
            message: message.into(),
        });
    }

    /// Fields left in `map` after conversion took what it knows: none has a place in v1.
    fn leftovers(&mut self, prefix: &str, map: Map<String, Value>) {
        for key in map.keys() {
            self.warn(&join(prefix, key), "has no equivalent in v1; dropped");
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn flatten<'a>(doc: &'a Value, out: &mut Vec<&'a Value>) {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    match (kind.ends_with("List"), doc.get("items").and_then(Value::as_array)) {
        (true, Some(items)) => items.iter().for_each(|item| flatten(item, out)),
        _ => out.push(doc),
    }
}

fn name_of(doc: &Value) -> String {
    doc.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn describe(kind: &str, doc: &Value) -> String {
    let kind = if kind.is_empty() { "document" } else { kind };
    match name_of(doc).as_str() {
        "" => format!("{kind} (unnamed)"),
        name => format!("{kind} {name}"),
    }
}

fn object(ctx: &mut Ctx<'_>, field: &str, v: Option<Value>) -> Option<Map<String, Value>> {
    match v? {
        Value::Object(map) => Some(map),
        Value::Null => None,
        _ => {
            ctx.warn(field, "is not an object; dropped");
            None
        }
    }
}

fn array(ctx: &mut Ctx<'_>, field: &str, v: Option<Value>) -> Vec<Value> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            ctx.warn(field, "is not a list; dropped");
            Vec::new()
        }
    }
}

fn string(ctx: &mut Ctx<'_>, field: &str, v: Option<Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s),
        Value::Null => None,
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => {
            ctx.warn(field, "is not a string; dropped");
            None
        }
    }
}

/// A map of strings (labels, annotations, tags, selectors); scalar values are written as
/// strings, as Kubernetes would have needed them quoted.
fn string_map(ctx: &mut Ctx<'_>, field: &str, v: Option<Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in object(ctx, field, v).unwrap_or_default() {
        if let Some(s) = string(ctx, &join(field, &k), Some(v)) {
            out.insert(k, s);
        }
    }
    out
}

fn seconds(ctx: &mut Ctx<'_>, field: &str, v: Option<Value>) -> Option<String> {
    let v = v?;
    match v.as_i64() {
        Some(s) if s >= 0 => Some(go_duration(s)),
        _ => {
            ctx.warn(field, format!("{v} is not a number of seconds; dropped"));
            None
        }
    }
}

/// Whole seconds as the shortest Go duration: `720h`, `90s`, `2m`.
fn go_duration(s: i64) -> String {
    match s {
        0 => "0s".to_string(),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Name, labels and annotations; the rest of an object's metadata is the server's.
fn metadata(ctx: &mut Ctx<'_>, meta: Option<&Value>) -> (Map<String, Value>, String) {
    let mut meta = object(ctx, "metadata", meta.cloned()).unwrap_or_default();
    let name = string(ctx, "metadata.name", meta.remove("name")).unwrap_or_default();
    if name.is_empty() {
        ctx.warn("metadata.name", "is missing; the converted object has no name");
    }
    let labels = string_map(ctx, "metadata.labels", meta.remove("labels"));
    let mut annotations = string_map(ctx, "metadata.annotations", meta.remove("annotations"));
    // The previous version's whole text; it would only mislead `kubectl apply` later.
    annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    let mut out = Map::new();
    out.insert("name".into(), json!(name));
    if !labels.is_empty() {
        out.insert("labels".into(), json!(labels));
    }
    if !annotations.is_empty() {
        out.insert("annotations".into(), json!(annotations));
    }
    (out, name)
}

fn insert_nonempty_map(map: &mut Map<String, Value>, key: &str, value: BTreeMap<String, String>) {
    if !value.is_empty() {
        map.insert(key.into(), json!(value));
    }
}

fn insert_nonempty_list(map: &mut Map<String, Value>, key: &str, value: Vec<Value>) {
    if !value.is_empty() {
        map.insert(key.into(), Value::Array(value));
    }
}

/// Parses a converted document as `nodewright plan` would, and reports a refusal.
fn check(doc: &Value, warnings: &mut Vec<ConvertWarning>) {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let object = describe(kind, doc);
    let refusal = match serde_yaml::to_string(doc) {
        Ok(yaml) => api::parse_config_object(&yaml, &object).err().map(|e| chain(&e)),
        Err(e) => Some(e.to_string()),
    };
    if let Some(why) = refusal {
        warnings.push(ConvertWarning {
            object,
            field: String::new(),
            message: format!("the converted object is not accepted by nodewright: {why}"),
        });
    }
}

fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

// ---------------------------------------------------------------------------------------------
// NodePools

struct PoolOut {
    name: String,
    /// `Kind name` of the input object, for warnings.
    object: String,
    value: Value,
    /// The EC2NodeClass its nodeClassRef names.
    class: String,
    /// Kubelet settings that move to the node class, and where they were in the input.
    kubelet: Option<Map<String, Value>>,
    kubelet_field: &'static str,
    /// Converted from an older version (v1 pools pass through and hold no kubelet).
    converted: bool,
}

impl PoolOut {
    fn point_at(&mut self, class: &str) {
        self.class = class.to_string();
        if let Some(name) = self.value.pointer_mut("/spec/template/spec/nodeClassRef/name") {
            *name = json!(class);
        }
    }
}

/// The parts of a v1 NodePool, gathered from either older version.
#[derive(Default)]
struct PoolParts {
    meta: Map<String, Value>,
    name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    requirements: Vec<Value>,
    taints: Vec<Value>,
    startup_taints: Vec<Value>,
    class: String,
    expire_after: Option<String>,
    consolidation_policy: &'static str,
    consolidate_after: String,
    budgets: Vec<Value>,
    limits: Option<Map<String, Value>>,
    weight: Option<Value>,
    kubelet: Option<Map<String, Value>>,
    kubelet_field: &'static str,
}

fn build_pool(ctx: &Ctx<'_>, p: PoolParts) -> PoolOut {
    let mut template_meta = Map::new();
    insert_nonempty_map(&mut template_meta, "labels", p.labels);
    insert_nonempty_map(&mut template_meta, "annotations", p.annotations);
    let mut template_spec = Map::new();
    template_spec.insert("requirements".into(), Value::Array(p.requirements));
    template_spec.insert(
        "nodeClassRef".into(),
        json!({"group": NODECLASS_GROUP, "kind": NODECLASS_KIND, "name": p.class}),
    );
    insert_nonempty_list(&mut template_spec, "taints", p.taints);
    insert_nonempty_list(&mut template_spec, "startupTaints", p.startup_taints);
    if let Some(e) = p.expire_after {
        template_spec.insert("expireAfter".into(), json!(e));
    }
    let mut template = Map::new();
    if !template_meta.is_empty() {
        template.insert("metadata".into(), Value::Object(template_meta));
    }
    template.insert("spec".into(), Value::Object(template_spec));
    let mut disruption = Map::new();
    disruption.insert("consolidationPolicy".into(), json!(p.consolidation_policy));
    disruption.insert("consolidateAfter".into(), json!(p.consolidate_after));
    insert_nonempty_list(&mut disruption, "budgets", p.budgets);
    let mut spec = Map::new();
    spec.insert("template".into(), Value::Object(template));
    spec.insert("disruption".into(), Value::Object(disruption));
    if let Some(limits) = p.limits.filter(|l| !l.is_empty()) {
        spec.insert("limits".into(), Value::Object(limits));
    }
    if let Some(w) = p.weight {
        spec.insert("weight".into(), w);
    }
    PoolOut {
        name: p.name,
        object: ctx.object.clone(),
        value: json!({
            "apiVersion": api::NODEPOOL_API_VERSION,
            "kind": "NodePool",
            "metadata": p.meta,
            "spec": spec,
        }),
        class: p.class,
        kubelet: p.kubelet,
        kubelet_field: p.kubelet_field,
        converted: true,
    }
}

/// Requirements as they are, less the label v1beta1 dropped; for a Provisioner, plus the
/// requirements v1alpha5's webhook added when none constrained the key.
fn requirements(ctx: &mut Ctx<'_>, field: &str, v: Option<Value>, v1alpha5_defaults: bool) -> Vec<Value> {
    let mut out = Vec::new();
    for (i, req) in array(ctx, field, v).into_iter().enumerate() {
        match req.get("key").and_then(Value::as_str) {
            Some(INSTANCE_PODS) => ctx.warn(
                &format!("{field}[{i}]"),
                format!("{INSTANCE_PODS} was dropped in v1beta1; requirement dropped"),
            ),
            _ => out.push(req),
        }
    }
    if v1alpha5_defaults {
        let has = |out: &[Value], key: &str| {
            out.iter()
                .any(|r| r.get("key").and_then(Value::as_str) == Some(key))
        };
        let mut add = Vec::new();
        if !has(&out, "kubernetes.io/os") {
            add.push(json!({"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}));
        }
        if !has(&out, "kubernetes.io/arch") {
            add.push(json!({"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}));
        }
        if !has(&out, "karpenter.sh/capacity-type") {
            add.push(json!({"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}));
        }
        if ![
            "node.kubernetes.io/instance-type",
            "karpenter.k8s.aws/instance-family",
            "karpenter.k8s.aws/instance-category",
            "karpenter.k8s.aws/instance-generation",
        ]
        .iter()
        .any(|k| has(&out, k))
        {
            add.push(json!({"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["c", "m", "r"]}));
            add.push(
                json!({"key": "karpenter.k8s.aws/instance-generation", "operator": "Gt", "values": ["2"]}),
            );
        }
        out.extend(add);
    }
    out
}

/// Kubelet settings v1 keeps; the others are reported.
fn kubelet(ctx: &mut Ctx<'_>, field: &str, v: Option<Value>) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    for (k, v) in object(ctx, field, v)? {
        if KUBELET_FIELDS.contains(&k.as_str()) {
            out.insert(k, v);
        } else if k == "containerRuntime" {
            ctx.warn(
                &join(field, &k),
                "was dropped in v1beta1 (containerd is the only runtime); dropped",
            );
        } else {
            ctx.warn(&join(field, &k), "is not a kubelet setting in v1; dropped");
        }
    }
    (!out.is_empty()).then_some(out)
}

fn limits(ctx: &mut Ctx<'_>, field: &str, v: Option<Value>) -> Option<Map<String, Value>> {
    object(ctx, field, v)
}

fn weight(ctx: &mut Ctx<'_>, field: &str, v: Option<Value>) -> Option<Value> {
    match v? {
        Value::Number(n) if n.is_i64() => Some(Value::Number(n)),
        Value::Null => None,
        other => {
            ctx.warn(field, format!("{other} is not an integer; dropped"));
            None
        }
    }
}

/// `karpenter.sh/v1alpha5 Provisioner` → v1 NodePool, and an EC2NodeClass for an inline
/// `provider`.
fn provisioner(ctx: &mut Ctx<'_>, doc: &Value) -> (PoolOut, Option<ClassOut>) {
    let (meta, name) = metadata(ctx, doc.get("metadata"));
    let mut spec = object(ctx, "spec", doc.get("spec").cloned()).unwrap_or_default();
    let mut p = PoolParts {
        meta,
        name: name.clone(),
        labels: string_map(ctx, "spec.labels", spec.remove("labels")),
        annotations: string_map(ctx, "spec.annotations", spec.remove("annotations")),
        requirements: requirements(ctx, "spec.requirements", spec.remove("requirements"), true),
        taints: array(ctx, "spec.taints", spec.remove("taints")),
        startup_taints: array(ctx, "spec.startupTaints", spec.remove("startupTaints")),
        kubelet: kubelet(
            ctx,
            "spec.kubeletConfiguration",
            spec.remove("kubeletConfiguration"),
        ),
        kubelet_field: "spec.kubeletConfiguration",
        limits: None,
        weight: weight(ctx, "spec.weight", spec.remove("weight")),
        ..PoolParts::default()
    };

    let mut class = None;
    match (spec.remove("providerRef"), spec.remove("provider")) {
        (Some(reference), provider) => {
            if provider.is_some() {
                ctx.warn("spec.provider", "ignored: spec.providerRef is set too");
            }
            let mut reference = object(ctx, "spec.providerRef", Some(reference)).unwrap_or_default();
            let kind = string(ctx, "spec.providerRef.kind", reference.remove("kind"));
            if kind.as_deref().is_some_and(|k| k != "AWSNodeTemplate") {
                ctx.warn(
                    "spec.providerRef.kind",
                    format!(
                        "{} is not AWSNodeTemplate; the NodePool refers to an EC2NodeClass of the same name",
                        kind.unwrap_or_default()
                    ),
                );
            }
            reference.remove("apiVersion");
            p.class = string(ctx, "spec.providerRef.name", reference.remove("name")).unwrap_or_default();
            ctx.leftovers("spec.providerRef", reference);
        }
        (None, Some(provider)) => {
            let provider = object(ctx, "spec.provider", Some(provider)).unwrap_or_default();
            let mut meta = Map::new();
            meta.insert("name".into(), json!(name));
            class = Some(class_v1alpha1(ctx, "spec.provider", meta, name.clone(), provider));
            p.class = name.clone();
        }
        (None, None) => {
            ctx.warn(
                "spec.providerRef",
                "neither providerRef nor provider is set; the NodePool refers to EC2NodeClass default",
            );
            p.class = "default".to_string();
        }
    }

    // ttlSecondsUntilExpired → expireAfter; without it v1alpha5 never expired nodes.
    p.expire_after = Some(
        seconds(
            ctx,
            "spec.ttlSecondsUntilExpired",
            spec.remove("ttlSecondsUntilExpired"),
        )
        .unwrap_or_else(|| "Never".to_string()),
    );
    let ttl_empty = seconds(
        ctx,
        "spec.ttlSecondsAfterEmpty",
        spec.remove("ttlSecondsAfterEmpty"),
    );
    let mut consolidation =
        object(ctx, "spec.consolidation", spec.remove("consolidation")).unwrap_or_default();
    let enabled = consolidation.remove("enabled").and_then(|v| v.as_bool());
    ctx.leftovers("spec.consolidation", consolidation);
    if enabled == Some(true) {
        if ttl_empty.is_some() {
            ctx.warn(
                "spec.ttlSecondsAfterEmpty",
                "ignored: consolidation is enabled, which removes empty nodes too",
            );
        }
        p.consolidation_policy = "WhenEmptyOrUnderutilized";
        p.consolidate_after = "0s".to_string();
    } else {
        // Only empty nodes were removed, after ttlSecondsAfterEmpty; without it, none.
        p.consolidation_policy = "WhenEmpty";
        p.consolidate_after = ttl_empty.unwrap_or_else(|| "Never".to_string());
    }

    let mut lim = object(ctx, "spec.limits", spec.remove("limits")).unwrap_or_default();
    p.limits = limits(ctx, "spec.limits.resources", lim.remove("resources"));
    ctx.leftovers("spec.limits", lim);
    ctx.leftovers("spec", spec);
    (build_pool(ctx, p), class)
}

/// `karpenter.sh/v1beta1 NodePool` → v1 NodePool.
fn nodepool_v1beta1(ctx: &mut Ctx<'_>, doc: &Value) -> PoolOut {
    let (meta, name) = metadata(ctx, doc.get("metadata"));
    let mut spec = object(ctx, "spec", doc.get("spec").cloned()).unwrap_or_default();
    let mut template = object(ctx, "spec.template", spec.remove("template")).unwrap_or_default();
    let mut tmeta = object(ctx, "spec.template.metadata", template.remove("metadata")).unwrap_or_default();
    let mut tspec = object(ctx, "spec.template.spec", template.remove("spec")).unwrap_or_default();
    let mut p = PoolParts {
        meta,
        name,
        labels: string_map(ctx, "spec.template.metadata.labels", tmeta.remove("labels")),
        annotations: string_map(
            ctx,
            "spec.template.metadata.annotations",
            tmeta.remove("annotations"),
        ),
        requirements: requirements(
            ctx,
            "spec.template.spec.requirements",
            tspec.remove("requirements"),
            false,
        ),
        taints: array(ctx, "spec.template.spec.taints", tspec.remove("taints")),
        startup_taints: array(
            ctx,
            "spec.template.spec.startupTaints",
            tspec.remove("startupTaints"),
        ),
        kubelet: kubelet(ctx, "spec.template.spec.kubelet", tspec.remove("kubelet")),
        kubelet_field: "spec.template.spec.kubelet",
        limits: limits(ctx, "spec.limits", spec.remove("limits")),
        weight: weight(ctx, "spec.weight", spec.remove("weight")),
        ..PoolParts::default()
    };
    ctx.leftovers("spec.template.metadata", tmeta);

    // nodeClassRef {apiVersion, kind, name} → {group, kind, name}.
    let mut reference = object(
        ctx,
        "spec.template.spec.nodeClassRef",
        tspec.remove("nodeClassRef"),
    )
    .unwrap_or_default();
    let api_version = string(
        ctx,
        "spec.template.spec.nodeClassRef.apiVersion",
        reference.remove("apiVersion"),
    );
    let group = api_version
        .as_deref()
        .and_then(|a| a.split('/').next())
        .filter(|g| !g.is_empty())
        .unwrap_or(NODECLASS_GROUP);
    let kind = string(
        ctx,
        "spec.template.spec.nodeClassRef.kind",
        reference.remove("kind"),
    );
    if group != NODECLASS_GROUP || kind.as_deref().is_some_and(|k| k != NODECLASS_KIND) {
        ctx.warn(
            "spec.template.spec.nodeClassRef",
            format!(
                "refers to {group} {}; the NodePool refers to an EC2NodeClass of the same name",
                kind.as_deref().unwrap_or(NODECLASS_KIND)
            ),
        );
    }
    p.class = string(
        ctx,
        "spec.template.spec.nodeClassRef.name",
        reference.remove("name"),
    )
    .unwrap_or_default();
    if p.class.is_empty() {
        ctx.warn("spec.template.spec.nodeClassRef.name", "is missing");
    }
    ctx.leftovers("spec.template.spec.nodeClassRef", reference);
    ctx.leftovers("spec.template.spec", tspec);
    ctx.leftovers("spec.template", template);

    let mut disruption = object(ctx, "spec.disruption", spec.remove("disruption")).unwrap_or_default();
    let policy = string(
        ctx,
        "spec.disruption.consolidationPolicy",
        disruption.remove("consolidationPolicy"),
    );
    let after = string(
        ctx,
        "spec.disruption.consolidateAfter",
        disruption.remove("consolidateAfter"),
    );
    match policy.as_deref().unwrap_or("WhenUnderutilized") {
        "WhenEmpty" => {
            p.consolidation_policy = "WhenEmpty";
            p.consolidate_after = after.unwrap_or_else(|| {
                ctx.warn(
                    "spec.disruption.consolidateAfter",
                    "is required with WhenEmpty and missing; 0s written",
                );
                "0s".to_string()
            });
        }
        other => {
            if other != "WhenUnderutilized" {
                ctx.warn(
                    "spec.disruption.consolidationPolicy",
                    format!("{other:?} is not a v1beta1 policy; WhenEmptyOrUnderutilized written"),
                );
            }
            if let Some(after) = after {
                ctx.warn(
                    "spec.disruption.consolidateAfter",
                    format!("{after} cannot be set with WhenUnderutilized in v1beta1; 0s written, as v1's conversion does"),
                );
            }
            p.consolidation_policy = "WhenEmptyOrUnderutilized";
            p.consolidate_after = "0s".to_string();
        }
    }
    // expireAfter moves to the template; v1beta1's default (720h) is v1's too.
    p.expire_after = string(
        ctx,
        "spec.disruption.expireAfter",
        disruption.remove("expireAfter"),
    );
    for (i, budget) in array(ctx, "spec.disruption.budgets", disruption.remove("budgets"))
        .into_iter()
        .enumerate()
    {
        let field = format!("spec.disruption.budgets[{i}]");
        let mut budget = object(ctx, &field, Some(budget)).unwrap_or_default();
        let mut out = Map::new();
        for key in ["nodes", "schedule", "duration", "reasons"] {
            if let Some(v) = budget.remove(key) {
                out.insert(key.into(), v);
            }
        }
        ctx.leftovers(&field, budget);
        p.budgets.push(Value::Object(out));
    }
    ctx.leftovers("spec.disruption", disruption);
    ctx.leftovers("spec", spec);
    build_pool(ctx, p)
}

// ---------------------------------------------------------------------------------------------
// EC2NodeClasses

struct ClassOut {
    name: String,
    /// The class as converted, before any NodePool's kubelet moved in.
    base: Value,
    value: Value,
    /// Copies for NodePools whose kubelet differs from the first one's.
    copies: Vec<Value>,
    /// The index of the Provisioner whose inline provider it came from.
    from_provider: Option<usize>,
    /// Kubelet already in place: `Some` for a v1 class read as it is.
    kubelet: Option<Option<Map<String, Value>>>,
}

/// The parts of a v1 EC2NodeClass, gathered from either older version.
#[derive(Default)]
struct ClassParts {
    ami_family: Option<String>,
    ami_terms: Vec<Value>,
    subnet_terms: Vec<Value>,
    security_group_terms: Vec<Value>,
    role: Option<String>,
    instance_profile: Option<String>,
    user_data: Option<String>,
    tags: BTreeMap<String, String>,
    block_devices: Vec<Value>,
    instance_store_policy: Option<String>,
    detailed_monitoring: Option<Value>,
    associate_public_ip: Option<Value>,
    metadata_options: Option<Map<String, Value>>,
}

/// `karpenter.k8s.aws/v1alpha1 AWSNodeTemplate` spec, or a Provisioner's inline `provider`
/// (the same fields), → v1 EC2NodeClass. `prefix` is where the fields sit in the input.
fn class_v1alpha1(
    ctx: &mut Ctx<'_>,
    prefix: &str,
    meta: Map<String, Value>,
    name: String,
    mut spec: Map<String, Value>,
) -> ClassOut {
    let f = |key: &str| join(prefix, key);
    // An inline provider may carry its own apiVersion and kind.
    spec.remove("apiVersion");
    spec.remove("kind");
    let c = ClassParts {
        // v1alpha1 defaulted the family to AL2; v1beta1 made it explicit.
        ami_family: Some(
            string(ctx, &f("amiFamily"), spec.remove("amiFamily")).unwrap_or_else(|| "AL2".to_string()),
        ),
        ami_terms: selector_terms(ctx, &f("amiSelector"), spec.remove("amiSelector"), Selector::Ami),
        subnet_terms: selector_terms(
            ctx,
            &f("subnetSelector"),
            spec.remove("subnetSelector"),
            Selector::Subnet,
        ),
        security_group_terms: selector_terms(
            ctx,
            &f("securityGroupSelector"),
            spec.remove("securityGroupSelector"),
            Selector::SecurityGroup,
        ),
        instance_profile: string(ctx, &f("instanceProfile"), spec.remove("instanceProfile")),
        user_data: string(ctx, &f("userData"), spec.remove("userData")),
        tags: string_map(ctx, &f("tags"), spec.remove("tags")),
        block_devices: block_devices(ctx, &f("blockDeviceMappings"), spec.remove("blockDeviceMappings")),
        detailed_monitoring: spec.remove("detailedMonitoring"),
        associate_public_ip: spec.remove("associatePublicIpAddress"),
        metadata_options: metadata_options(ctx, &f("metadataOptions"), spec.remove("metadataOptions")),
        ..ClassParts::default()
    };
    if let Some(lt) = string(ctx, &f("launchTemplate"), spec.remove("launchTemplate")) {
        ctx.warn(
            &f("launchTemplate"),
            format!("launch template {lt:?}: unmanaged launch templates were removed in v1beta1; dropped"),
        );
    }
    unsupported_context(ctx, &f("context"), spec.remove("context"));
    ctx.leftovers(prefix, spec);
    build_class(ctx, prefix, meta, name, c)
}

/// `karpenter.k8s.aws/v1beta1 EC2NodeClass` → v1 EC2NodeClass.
fn nodeclass_v1beta1(ctx: &mut Ctx<'_>, doc: &Value) -> ClassOut {
    let (meta, name) = metadata(ctx, doc.get("metadata"));
    let mut spec = object(ctx, "spec", doc.get("spec").cloned()).unwrap_or_default();
    let c = ClassParts {
        ami_family: string(ctx, "spec.amiFamily", spec.remove("amiFamily")),
        ami_terms: array(ctx, "spec.amiSelectorTerms", spec.remove("amiSelectorTerms")),
        subnet_terms: array(
            ctx,
            "spec.subnetSelectorTerms",
            spec.remove("subnetSelectorTerms"),
        ),
        security_group_terms: array(
            ctx,
            "spec.securityGroupSelectorTerms",
            spec.remove("securityGroupSelectorTerms"),
        ),
        role: string(ctx, "spec.role", spec.remove("role")),
        instance_profile: string(ctx, "spec.instanceProfile", spec.remove("instanceProfile")),
        user_data: string(ctx, "spec.userData", spec.remove("userData")),
        tags: string_map(ctx, "spec.tags", spec.remove("tags")),
        block_devices: block_devices(
            ctx,
            "spec.blockDeviceMappings",
            spec.remove("blockDeviceMappings"),
        ),
        instance_store_policy: string(
            ctx,
            "spec.instanceStorePolicy",
            spec.remove("instanceStorePolicy"),
        ),
        detailed_monitoring: spec.remove("detailedMonitoring"),
        associate_public_ip: spec.remove("associatePublicIPAddress"),
        metadata_options: metadata_options(ctx, "spec.metadataOptions", spec.remove("metadataOptions")),
    };
    unsupported_context(ctx, "spec.context", spec.remove("context"));
    ctx.leftovers("spec", spec);
    build_class(ctx, "spec", meta, name, c)
}

fn unsupported_context(ctx: &mut Ctx<'_>, field: &str, v: Option<Value>) {
    if v.is_some_and(|v| !v.is_null()) {
        ctx.warn(
            field,
            "is not supported by nodewright (a node class with it is refused); dropped",
        );
    }
}

fn build_class(
    ctx: &mut Ctx<'_>,
    prefix: &str,
    meta: Map<String, Value>,
    name: String,
    c: ClassParts,
) -> ClassOut {
    let f = |key: &str| join(prefix, key);
    let mut spec = Map::new();
    let mut ami_terms = c.ami_terms;
    let mut block_devices = c.block_devices;
    let family = c.ami_family;
    match family.as_deref() {
        // v1 selects the family's AMIs with an alias; with other terms the family stays.
        Some(fam) if ALIAS_FAMILIES.contains(&fam) => {
            if ami_terms.is_empty() {
                ami_terms.push(json!({"alias": format!("{}@latest", fam.to_ascii_lowercase())}));
            } else {
                spec.insert("amiFamily".into(), json!(fam));
            }
        }
        Some("Ubuntu") => {
            ctx.warn(
                &f("amiFamily"),
                "Ubuntu is not an AMI family in v1; written as AL2, whose user data format it shares",
            );
            spec.insert("amiFamily".into(), json!("AL2"));
            if block_devices.is_empty() {
                // Ubuntu's root volume, which AL2 would otherwise name differently.
                block_devices.push(json!({
                    "deviceName": "/dev/sda1",
                    "rootVolume": true,
                    "ebs": {"encrypted": true, "volumeType": "gp3", "volumeSize": "20Gi"},
                }));
            }
        }
        Some("Custom") => {
            spec.insert("amiFamily".into(), json!("Custom"));
        }
        Some(other) => {
            ctx.warn(
                &f("amiFamily"),
                format!("{other:?} is not an AMI family Karpenter knows; written as Custom"),
            );
            spec.insert("amiFamily".into(), json!("Custom"));
        }
        None => {
            if ami_terms.is_empty() {
                ctx.warn(
                    &f("amiFamily"),
                    "neither amiFamily nor AMI selector terms are set",
                );
            }
        }
    }
    if ami_terms.is_empty() {
        ctx.warn(
            &f("amiSelectorTerms"),
            format!(
                "v1 requires AMI selector terms and none can be derived; {AMI_PLACEHOLDER:?} written: \
                 replace it with the AMIs to launch"
            ),
        );
        ami_terms.push(json!({"id": AMI_PLACEHOLDER}));
    }
    spec.insert("amiSelectorTerms".into(), Value::Array(ami_terms));
    if c.subnet_terms.is_empty() {
        ctx.warn(&f("subnetSelector"), "no subnet selector; v1 requires one");
    }
    spec.insert("subnetSelectorTerms".into(), Value::Array(c.subnet_terms));
    if c.security_group_terms.is_empty() {
        ctx.warn(
            &f("securityGroupSelector"),
            "no security group selector; v1 requires one",
        );
    }
    spec.insert(
        "securityGroupSelectorTerms".into(),
        Value::Array(c.security_group_terms),
    );

    match (c.role, c.instance_profile) {
        (Some(role), profile) => {
            if profile.is_some() {
                ctx.warn(
                    &f("instanceProfile"),
                    "role is set too, and v1 takes only one; dropped",
                );
            }
            spec.insert("role".into(), json!(role));
        }
        (None, Some(profile)) => {
            spec.insert("instanceProfile".into(), json!(profile));
        }
        (None, None) => {
            ctx.warn(
                &f("instanceProfile"),
                format!(
                    "not set (the controller's defaultInstanceProfile applied, which v1 does not have); \
                     role {ROLE_PLACEHOLDER:?} written: replace it with the node role"
                ),
            );
            spec.insert("role".into(), json!(ROLE_PLACEHOLDER));
        }
    }
    if let Some(u) = c.user_data {
        spec.insert("userData".into(), json!(u));
    }
    insert_nonempty_map(&mut spec, "tags", c.tags);
    insert_nonempty_list(&mut spec, "blockDeviceMappings", block_devices);
    if let Some(p) = c.instance_store_policy {
        spec.insert("instanceStorePolicy".into(), json!(p));
    }
    if let Some(v) = c.detailed_monitoring.filter(|v| !v.is_null()) {
        spec.insert("detailedMonitoring".into(), v);
    }
    if let Some(v) = c.associate_public_ip.filter(|v| !v.is_null()) {
        spec.insert("associatePublicIPAddress".into(), v);
    }
    // v1 lowered the default hop limit from 2 to 1, which cuts containers off from IMDS;
    // a class that left the options to the default keeps the old ones.
    let options = c.metadata_options.unwrap_or_else(|| {
        let mut m = Map::new();
        m.insert("httpEndpoint".into(), json!("enabled"));
        m.insert("httpProtocolIPv6".into(), json!("disabled"));
        m.insert("httpPutResponseHopLimit".into(), json!(2));
        m.insert("httpTokens".into(), json!("required"));
        m
    });
    spec.insert("metadataOptions".into(), Value::Object(options));
    let value = json!({
        "apiVersion": api::EC2NODECLASS_API_VERSION,
        "kind": NODECLASS_KIND,
        "metadata": meta,
        "spec": spec,
    });
    ClassOut {
        name,
        base: value.clone(),
        value,
        copies: Vec::new(),
        from_provider: None,
        kubelet: None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Selector {
    Ami,
    Subnet,
    SecurityGroup,
}

/// A v1alpha1 selector map → v1 selector terms: `aws-ids` / `aws::ids` become one `id` term
/// each (an id term takes no other field in v1); for AMIs, `aws::name` and `aws::owners` become
/// `name` and `owner`; the other keys are tags. Comma-separated values list alternatives, so
/// they multiply into several terms; an empty value, a wildcard in v1alpha1, becomes `*`.
fn selector_terms(ctx: &mut Ctx<'_>, field: &str, v: Option<Value>, kind: Selector) -> Vec<Value> {
    let map = string_map(ctx, field, v);
    let list = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut ids = Vec::new();
    let mut names = Vec::new();
    let mut owners = Vec::new();
    let mut tags: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in &map {
        match k.as_str() {
            "aws-ids" | "aws::ids" => ids.extend(list(v)),
            "aws::name" if kind == Selector::Ami => names.extend(list(v)),
            "aws::owners" if kind == Selector::Ami => owners.extend(list(v)),
            _ => {
                let values = list(v);
                let values = if values.is_empty() {
                    vec!["*".to_string()]
                } else {
                    values
                };
                tags.push((k.clone(), values));
            }
        }
    }
    if !ids.is_empty() {
        let others: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| !matches!(*k, "aws-ids" | "aws::ids"))
            .collect();
        if !others.is_empty() {
            ctx.warn(
                field,
                format!(
                    "an id term takes no other field in v1; {} dropped, the ids kept",
                    others.join(", ")
                ),
            );
        }
        return ids.into_iter().map(|id| json!({"id": id})).collect();
    }
    let mut combos: Vec<BTreeMap<String, String>> = vec![BTreeMap::new()];
    for (key, values) in &tags {
        combos = combos
            .iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.insert(key.clone(), v.clone());
                    c
                })
            })
            .collect();
    }
    let names: Vec<Option<String>> = if names.is_empty() {
        vec![None]
    } else {
        names.into_iter().map(Some).collect()
    };
    let owners: Vec<Option<String>> = if owners.is_empty() {
        vec![None]
    } else {
        owners.into_iter().map(Some).collect()
    };
    let mut out = Vec::new();
    for owner in &owners {
        for name in &names {
            for tags in &combos {
                let mut term = Map::new();
                if let Some(n) = name {
                    term.insert("name".into(), json!(n));
                }
                if let Some(o) = owner {
                    term.insert("owner".into(), json!(o));
                }
                insert_nonempty_map(&mut term, "tags", tags.clone());
                if term.is_empty() {
                    continue;
                }
                if !term.contains_key("name") && !term.contains_key("tags") {
                    ctx.warn(
                        field,
                        "aws::owners alone selects no AMI in v1 (it needs a name or tags); dropped",
                    );
                    continue;
                }
                out.push(Value::Object(term));
            }
        }
    }
    out
}

fn block_devices(ctx: &mut Ctx<'_>, field: &str, v: Option<Value>) -> Vec<Value> {
    let mut out = Vec::new();
    for (i, mapping) in array(ctx, field, v).into_iter().enumerate() {
        let at = format!("{field}[{i}]");
        let Some(mut mapping) = object(ctx, &at, Some(mapping)) else {
            continue;
        };
        let mut m = Map::new();
        if let Some(d) = mapping.remove("deviceName") {
            m.insert("deviceName".into(), d);
        }
        if let Some(r) = mapping.remove("rootVolume") {
            m.insert("rootVolume".into(), r);
        }
        if let Some(mut ebs) = object(ctx, &join(&at, "ebs"), mapping.remove("ebs")) {
            let mut e = Map::new();
            for key in EBS_FIELDS {
                if let Some(v) = ebs.remove(*key) {
                    e.insert((*key).into(), v);
                }
            }
            ctx.leftovers(&join(&at, "ebs"), ebs);
            m.insert("ebs".into(), Value::Object(e));
        }
        if mapping.remove("virtualName").is_some() {
            ctx.warn(
                &join(&at, "virtualName"),
                "instance store volumes are not block device mappings in v1 (see instanceStorePolicy); dropped",
            );
        }
        ctx.leftovers(&at, mapping);
        out.push(Value::Object(m));
    }
    out
}

fn metadata_options(ctx: &mut Ctx<'_>, field: &str, v: Option<Value>) -> Option<Map<String, Value>> {
    let mut options = object(ctx, field, v)?;
    let mut out = Map::new();
    for key in METADATA_OPTION_FIELDS {
        if let Some(v) = options.remove(*key) {
            out.insert((*key).into(), v);
        }
    }
    ctx.leftovers(field, options);
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Across objects

/// A class made from a Provisioner's inline provider takes the Provisioner's name; if another
/// class has that name, it becomes `<name>-provider`.
fn rename_provider_classes(
    pools: &mut [PoolOut],
    classes: &mut [ClassOut],
    warnings: &mut Vec<ConvertWarning>,
) {
    for i in 0..classes.len() {
        let Some(pool) = classes[i].from_provider else {
            continue;
        };
        let name = classes[i].name.clone();
        if !classes.iter().enumerate().any(|(j, c)| j != i && c.name == name) {
            continue;
        }
        let renamed = format!("{name}-provider");
        let class = &mut classes[i];
        for value in [&mut class.value, &mut class.base] {
            if let Some(n) = value.pointer_mut("/metadata/name") {
                *n = json!(renamed);
            }
        }
        class.name = renamed.clone();
        if let Some(pool) = pools.get_mut(pool) {
            pool.point_at(&renamed);
            warnings.push(ConvertWarning {
                object: pool.object.clone(),
                field: "spec.provider".into(),
                message: format!("another EC2NodeClass is named {name}; the provider's is named {renamed}"),
            });
        }
    }
}

/// Kubelet settings move from the NodePool to the EC2NodeClass in v1. NodePools that share a
/// class but not their kubelet get copies of the class, `<class>-<nodepool>`, one per
/// distinct kubelet after the first.
fn place_kubelets(pools: &mut [PoolOut], classes: &mut [ClassOut], warnings: &mut Vec<ConvertWarning>) {
    // Per class: the kubelet it holds (once decided) and who decided it.
    let mut held: HashMap<String, (Kubelet, String)> = HashMap::new();
    for class in classes.iter() {
        if let Some(k) = &class.kubelet {
            held.insert(
                class.name.clone(),
                (k.clone(), format!("EC2NodeClass {}", class.name)),
            );
        }
    }
    // Per (class, kubelet): the copy made for it.
    let mut copies: Vec<(String, Kubelet, String)> = Vec::new();
    for pool in pools.iter_mut().filter(|p| p.converted) {
        let class_name = pool.class.clone();
        let Some(ci) = classes.iter().position(|c| c.name == class_name) else {
            if let Some(k) = &pool.kubelet {
                warnings.push(ConvertWarning {
                    object: pool.object.clone(),
                    field: pool.kubelet_field.into(),
                    message: format!(
                        "belongs to the EC2NodeClass in v1, but EC2NodeClass {class_name} is not among \
                         the converted documents; add kubelet: {} to it by hand",
                        Value::Object(k.clone())
                    ),
                });
            }
            continue;
        };
        match held.get(&class_name) {
            None => {
                if let Some(k) = &pool.kubelet {
                    set_kubelet(&mut classes[ci].value, k);
                }
                held.insert(
                    class_name,
                    (pool.kubelet.clone(), format!("NodePool {}", pool.name)),
                );
            }
            Some((k, _)) if *k == pool.kubelet => {}
            Some((_, first)) => {
                let existing = copies
                    .iter()
                    .find(|(c, k, _)| *c == class_name && *k == pool.kubelet)
                    .map(|(_, _, name)| name.clone());
                let copy_name = match existing {
                    Some(name) => name,
                    None => {
                        let name = format!("{class_name}-{}", pool.name);
                        let mut copy = classes[ci].base.clone();
                        if let Some(n) = copy.pointer_mut("/metadata/name") {
                            *n = json!(name);
                        }
                        match &pool.kubelet {
                            Some(k) => set_kubelet(&mut copy, k),
                            None => {
                                if let Some(spec) = copy.get_mut("spec").and_then(Value::as_object_mut) {
                                    spec.remove("kubelet");
                                }
                            }
                        }
                        classes[ci].copies.push(copy);
                        copies.push((class_name.clone(), pool.kubelet.clone(), name.clone()));
                        name
                    }
                };
                warnings.push(ConvertWarning {
                    object: pool.object.clone(),
                    field: pool.kubelet_field.into(),
                    message: format!(
                        "differs from {first}'s, and both use EC2NodeClass {class_name}; kubelet belongs to \
                         the EC2NodeClass in v1, so this NodePool refers to a copy, EC2NodeClass {copy_name}"
                    ),
                });
                pool.point_at(&copy_name);
            }
        }
    }
}

/// A NodePool's kubelet settings, or none.
type Kubelet = Option<Map<String, Value>>;

fn set_kubelet(class: &mut Value, kubelet: &Map<String, Value>) {
    if let Some(spec) = class.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("kubelet".into(), Value::Object(kubelet.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert_yaml(yaml: &str) -> Conversion {
        convert_documents(&parse_documents(yaml).expect("fixture is YAML"))
    }

    fn find<'a>(c: &'a Conversion, kind: &str, name: &str) -> &'a Value {
        c.documents
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in {:#?}", c.documents))
    }

    fn warnings(c: &Conversion) -> Vec<String> {
        c.warnings.iter().map(ToString::to_string).collect()
    }

    /// Every converted document parses with the core's strict parser.
    fn assert_accepted(c: &Conversion) {
        for doc in &c.documents {
            let yaml = serde_yaml::to_string(doc).expect("serializes");
            if let Err(e) = api::parse_config_object(&yaml, "converted") {
                panic!("{} refused: {}\n{yaml}", describe("", doc), chain(&e));
            }
        }
        assert!(
            !warnings(c)
                .iter()
                .any(|w| w.contains("not accepted by nodewright")),
            "{:#?}",
            c.warnings
        );
    }

    fn requirement<'a>(pool: &'a Value, key: &str) -> Option<&'a Value> {
        pool["spec"]["template"]["spec"]["requirements"]
            .as_array()
            .expect("requirements")
            .iter()
            .find(|r| r["key"] == key)
    }

    const PROVISIONER_WITH_REF: &str = include_str!("../fixtures/convert/v1alpha5-provider-ref.yaml");
    const PROVISIONER_INLINE: &str = include_str!("../fixtures/convert/v1alpha5-inline-provider.yaml");
    const V1BETA1: &str = include_str!("../fixtures/convert/v1beta1-kubelet.yaml");

    #[test]
    fn a_v1alpha5_provisioner_with_a_provider_ref_and_its_aws_node_template_become_a_v1_pair() {
        let c = convert_yaml(PROVISIONER_WITH_REF);
        assert_accepted(&c);
        assert_eq!(c.documents.len(), 2);
        let pool = find(&c, "NodePool", "default");
        assert_eq!(pool["apiVersion"], "karpenter.sh/v1");
        let spec = &pool["spec"];
        let template = &spec["template"];
        assert_eq!(template["metadata"]["labels"]["team"], "web");
        assert_eq!(
            template["metadata"]["annotations"]["example.com/owner"],
            "platform"
        );
        assert_eq!(
            template["spec"]["nodeClassRef"],
            json!({"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"})
        );
        assert_eq!(template["spec"]["taints"][0]["key"], "example.com/special");
        assert_eq!(
            template["spec"]["startupTaints"][0]["key"],
            "example.com/not-ready"
        );
        assert_eq!(template["spec"]["expireAfter"], "720h");
        assert_eq!(spec["disruption"]["consolidationPolicy"], "WhenEmpty");
        assert_eq!(spec["disruption"]["consolidateAfter"], "30s");
        assert_eq!(spec["limits"], json!({"cpu": 1000, "memory": "1000Gi"}));
        assert_eq!(spec["weight"], 50);
        // The pool's own requirements, and those v1alpha5's webhook defaulted.
        assert_eq!(
            requirement(pool, "karpenter.sh/capacity-type").expect("capacity")["values"],
            json!(["spot"])
        );
        assert_eq!(
            requirement(pool, "kubernetes.io/arch").expect("defaulted")["values"],
            json!(["amd64"])
        );
        assert_eq!(
            requirement(pool, "karpenter.k8s.aws/instance-generation").expect("defaulted")["operator"],
            "Gt"
        );
        assert!(requirement(pool, "karpenter.k8s.aws/instance-pods").is_none());

        let class = find(&c, "EC2NodeClass", "default");
        let spec = &class["spec"];
        assert_eq!(spec["amiSelectorTerms"], json!([{"alias": "al2@latest"}]));
        assert!(spec.get("amiFamily").is_none());
        assert_eq!(
            spec["subnetSelectorTerms"],
            json!([{"tags": {"karpenter.sh/discovery": "my-cluster"}}])
        );
        assert_eq!(
            spec["securityGroupSelectorTerms"],
            json!([{"id": "sg-123"}, {"id": "sg-456"}])
        );
        assert_eq!(spec["instanceProfile"], "KarpenterNodeInstanceProfile-my-cluster");
        assert_eq!(spec["tags"]["team"], "web");
        assert_eq!(spec["blockDeviceMappings"][0]["ebs"]["volumeSize"], "100Gi");
        assert_eq!(spec["metadataOptions"]["httpPutResponseHopLimit"], 1);
        // The kubelet moved from the Provisioner to the class; containerRuntime did not.
        assert_eq!(
            spec["kubelet"],
            json!({"maxPods": 110, "systemReserved": {"cpu": "100m"}})
        );
        let w = warnings(&c);
        assert!(
            w.iter()
                .any(|w| w.starts_with("Provisioner default: spec.kubeletConfiguration.containerRuntime:")),
            "{w:#?}"
        );
        assert!(
            w.iter()
                .any(|w| w.starts_with("Provisioner default: spec.requirements[3]:")
                    && w.contains("instance-pods")),
            "{w:#?}"
        );
    }

    #[test]
    fn a_provisioner_with_an_inline_provider_gets_an_ec2_node_class_of_its_own_name() {
        let c = convert_yaml(PROVISIONER_INLINE);
        assert_accepted(&c);
        let pool = find(&c, "NodePool", "batch");
        assert_eq!(pool["spec"]["template"]["spec"]["nodeClassRef"]["name"], "batch");
        // No ttlSecondsUntilExpired: v1alpha5 never expired nodes.
        assert_eq!(pool["spec"]["template"]["spec"]["expireAfter"], "Never");
        let class = find(&c, "EC2NodeClass", "batch");
        let spec = &class["spec"];
        assert_eq!(
            spec["amiSelectorTerms"],
            json!([{"alias": "bottlerocket@latest"}])
        );
        // Comma-separated tag values are alternatives: one term each.
        assert_eq!(
            spec["subnetSelectorTerms"],
            json!([
                {"tags": {"Name": "private-a"}},
                {"tags": {"Name": "private-b"}},
            ])
        );
        assert_eq!(
            spec["securityGroupSelectorTerms"],
            json!([{"tags": {"karpenter.sh/discovery": "*"}}])
        );
        // Neither role nor instance profile: a placeholder role, reported.
        assert_eq!(spec["role"], ROLE_PLACEHOLDER);
        // Metadata options left to the default keep v1alpha1's hop limit.
        assert_eq!(spec["metadataOptions"]["httpPutResponseHopLimit"], 2);
        let w = warnings(&c);
        assert!(
            w.iter()
                .any(|w| w.starts_with("Provisioner batch: spec.provider.instanceProfile:")),
            "{w:#?}"
        );
        assert!(
            w.iter()
                .any(|w| w.starts_with("Provisioner batch: spec.provider.launchTemplate:")),
            "{w:#?}"
        );
    }

    #[test]
    fn a_v1beta1_nodepool_with_kubelet_moves_the_kubelet_to_its_ec2_node_class() {
        let c = convert_yaml(V1BETA1);
        assert_accepted(&c);
        let general = find(&c, "NodePool", "general");
        let spec = &general["spec"];
        assert_eq!(
            spec["disruption"]["consolidationPolicy"],
            "WhenEmptyOrUnderutilized"
        );
        assert_eq!(spec["disruption"]["consolidateAfter"], "0s");
        assert_eq!(spec["disruption"]["budgets"], json!([{"nodes": "20%"}]));
        assert_eq!(spec["template"]["spec"]["expireAfter"], "336h");
        assert!(spec["template"]["spec"].get("kubelet").is_none());
        assert_eq!(
            spec["template"]["spec"]["requirements"][0]["minValues"], 2,
            "minValues is kept"
        );
        let class = find(&c, "EC2NodeClass", "default");
        assert_eq!(class["spec"]["kubelet"]["maxPods"], 58);
        assert_eq!(
            class["spec"]["amiSelectorTerms"],
            json!([{"alias": "al2023@latest"}])
        );
        assert_eq!(class["spec"]["role"], "KarpenterNodeRole-my-cluster");

        // A second pool with other kubelet settings on the same class gets a copy of it.
        let gpu = find(&c, "NodePool", "gpu");
        assert_eq!(
            gpu["spec"]["template"]["spec"]["nodeClassRef"]["name"],
            "default-gpu"
        );
        let copy = find(&c, "EC2NodeClass", "default-gpu");
        assert_eq!(copy["spec"]["kubelet"]["maxPods"], 20);
        assert_eq!(
            copy["spec"]["subnetSelectorTerms"],
            class["spec"]["subnetSelectorTerms"]
        );
        assert!(
            warnings(&c).iter().any(
                |w| w.starts_with("NodePool gpu: spec.template.spec.kubelet: differs")
                    && w.contains("default-gpu")
            ),
            "{:#?}",
            c.warnings
        );
        // An AMI family with explicit terms keeps both.
        let custom = find(&c, "EC2NodeClass", "pinned");
        assert_eq!(custom["spec"]["amiFamily"], "AL2");
        assert_eq!(
            custom["spec"]["amiSelectorTerms"],
            json!([{"id": "ami-0123456789abcdef0"}])
        );
    }

    fn provisioner(spec: &str) -> Value {
        let yaml = format!(
            "apiVersion: karpenter.sh/v1alpha5\nkind: Provisioner\nmetadata: {{name: p}}\nspec:\n  providerRef: {{name: p}}\n{spec}"
        );
        let c = convert_yaml(&yaml);
        c.documents.into_iter().next().expect("a NodePool")
    }

    fn disruption(pool: &Value) -> (&str, &str) {
        let d = &pool["spec"]["disruption"];
        (
            d["consolidationPolicy"].as_str().expect("policy"),
            d["consolidateAfter"].as_str().expect("after"),
        )
    }

    #[test]
    fn consolidation_variants_map_as_karpenters_migrations_do() {
        // consolidation.enabled → WhenUnderutilized in v1beta1 → WhenEmptyOrUnderutilized, 0s.
        let pool = provisioner("  consolidation: {enabled: true}\n");
        assert_eq!(disruption(&pool), ("WhenEmptyOrUnderutilized", "0s"));
        // consolidation disabled, ttlSecondsAfterEmpty → WhenEmpty after that long.
        let pool = provisioner("  consolidation: {enabled: false}\n  ttlSecondsAfterEmpty: 120\n");
        assert_eq!(disruption(&pool), ("WhenEmpty", "2m"));
        // Neither: v1alpha5 removed no node, so neither does the v1 pool.
        let pool = provisioner("");
        assert_eq!(disruption(&pool), ("WhenEmpty", "Never"));
        // ttlSecondsUntilExpired → expireAfter on the template.
        let pool = provisioner("  ttlSecondsUntilExpired: 2592000\n");
        assert_eq!(pool["spec"]["template"]["spec"]["expireAfter"], "720h");

        let beta = |disruption: &str| {
            let yaml = format!(
                "apiVersion: karpenter.sh/v1beta1\nkind: NodePool\nmetadata: {{name: b}}\nspec:\n  template:\n    spec:\n      \
                 nodeClassRef: {{name: default}}\n  disruption: {disruption}\n"
            );
            convert_yaml(&yaml)
        };
        let c = beta("{consolidationPolicy: WhenEmpty, consolidateAfter: 5m}");
        assert_eq!(disruption(&c.documents[0]), ("WhenEmpty", "5m"));
        let c = beta("{consolidationPolicy: WhenUnderutilized}");
        assert_eq!(disruption(&c.documents[0]), ("WhenEmptyOrUnderutilized", "0s"));
        assert_eq!(
            c.documents[0]["spec"]["template"]["spec"]["nodeClassRef"],
            json!({"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"})
        );
        // Unset: v1beta1 defaulted to WhenUnderutilized.
        let c = beta("{}");
        assert_eq!(disruption(&c.documents[0]), ("WhenEmptyOrUnderutilized", "0s"));
    }

    #[test]
    fn what_cannot_be_mapped_is_reported_once_per_field_naming_object_and_field() {
        let yaml = "\
apiVersion: karpenter.k8s.aws/v1alpha1
kind: AWSNodeTemplate
metadata: {name: odd}
spec:
  amiFamily: Ubuntu
  instanceProfile: profile
  context: c-123
  subnetSelector: {aws-ids: 'subnet-1, subnet-2', Name: private}
  securityGroupSelector: {karpenter.sh/discovery: x}
  blockDeviceMappings:
    - deviceName: /dev/sdb
      virtualName: ephemeral0
  somethingNew: true
---
apiVersion: karpenter.sh/v1beta1
kind: NodePool
metadata: {name: np}
spec:
  template:
    spec:
      nodeClassRef: {apiVersion: karpenter.k8s.aws/v1beta1, kind: EC2NodeClass, name: missing}
      kubelet: {maxPods: 10, containerRuntime: dockerd}
      resources: {requests: {cpu: 1}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
";
        let c = convert_yaml(yaml);
        let w = warnings(&c);
        for expected in [
            "AWSNodeTemplate odd: spec.amiFamily: Ubuntu is not an AMI family in v1",
            "AWSNodeTemplate odd: spec.amiSelectorTerms: v1 requires AMI selector terms",
            "AWSNodeTemplate odd: spec.context: is not supported by nodewright",
            "AWSNodeTemplate odd: spec.subnetSelector: an id term takes no other field in v1; Name dropped",
            "AWSNodeTemplate odd: spec.blockDeviceMappings[0].virtualName:",
            "AWSNodeTemplate odd: spec.somethingNew: has no equivalent in v1; dropped",
            "NodePool np: spec.template.spec.kubelet.containerRuntime:",
            "NodePool np: spec.template.spec.resources: has no equivalent in v1; dropped",
            "NodePool np: spec.template.spec.kubelet: belongs to the EC2NodeClass in v1, but EC2NodeClass missing",
            "ConfigMap cm: v1 ConfigMap is not a Karpenter",
        ] {
            assert_eq!(
                w.iter().filter(|w| w.starts_with(expected)).count(),
                1,
                "{expected}\n{w:#?}"
            );
        }
        let class = find(&c, "EC2NodeClass", "odd");
        assert_eq!(class["spec"]["amiFamily"], "AL2");
        assert_eq!(
            class["spec"]["amiSelectorTerms"],
            json!([{"id": AMI_PLACEHOLDER}])
        );
        assert_eq!(
            class["spec"]["subnetSelectorTerms"],
            json!([{"id": "subnet-1"}, {"id": "subnet-2"}])
        );
        assert!(class["spec"].get("context").is_none());
        // The converted objects stay valid; the NodePool and the class are still accepted.
        assert_accepted(&c);
        assert_eq!(c.documents.len(), 2);
    }

    #[test]
    fn an_ami_selector_multiplies_names_owners_and_ids_into_v1_terms() {
        let mut warnings = Vec::new();
        let mut ctx = Ctx {
            object: "AWSNodeTemplate t".into(),
            warnings: &mut warnings,
        };
        let terms = selector_terms(
            &mut ctx,
            "spec.amiSelector",
            Some(json!({"aws::name": "a, b", "aws::owners": "self,amazon"})),
            Selector::Ami,
        );
        assert_eq!(
            terms,
            vec![
                json!({"name": "a", "owner": "self"}),
                json!({"name": "b", "owner": "self"}),
                json!({"name": "a", "owner": "amazon"}),
                json!({"name": "b", "owner": "amazon"}),
            ]
        );
        let terms = selector_terms(
            &mut ctx,
            "spec.amiSelector",
            Some(json!({"aws::ids": "ami-1,ami-2"})),
            Selector::Ami,
        );
        assert_eq!(terms, vec![json!({"id": "ami-1"}), json!({"id": "ami-2"})]);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn v1_objects_pass_through_and_the_output_is_yaml_plan_can_read() {
        let yaml = include_str!("../../../infra/examples/default-nodepool.yaml");
        let c = convert_yaml(yaml);
        assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
        assert_eq!(c.documents, parse_documents(yaml).expect("YAML"));
        let again = parse_documents(&c.to_yaml().expect("YAML")).expect("round trip");
        assert_eq!(again, c.documents);
    }

    #[test]
    fn whole_seconds_become_the_shortest_go_duration() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(30), "30s");
        assert_eq!(go_duration(120), "2m");
        assert_eq!(go_duration(2_592_000), "720h");
        assert_eq!(go_duration(3_690), "3690s");
    }
}
