//! v1alpha5 Provisioner and v1beta1 NodePool → v1 NodePool.

use std::collections::BTreeMap;

use nodewright_core::api;
use serde_json::{Map, Value, json};

use super::fields::{
    Ctx, array, insert_nonempty_list, insert_nonempty_map, join, metadata, object, seconds, string,
    string_map,
};
use super::nodeclass::{ClassOut, class_v1alpha1};
use super::{NODECLASS_GROUP, NODECLASS_KIND};

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

/// A requirement label v1beta1 dropped.
const INSTANCE_PODS: &str = "karpenter.k8s.aws/instance-pods";

pub(super) struct PoolOut {
    pub(super) name: String,
    /// `Kind name` of the input object, for warnings.
    pub(super) object: String,
    pub(super) value: Value,
    /// The EC2NodeClass its nodeClassRef names.
    pub(super) class: String,
    /// Kubelet settings that move to the node class, and where they were in the input.
    pub(super) kubelet: Option<Map<String, Value>>,
    pub(super) kubelet_field: &'static str,
    /// Converted from an older version (v1 pools pass through and hold no kubelet).
    pub(super) converted: bool,
}

impl PoolOut {
    pub(super) fn point_at(&mut self, class: &str) {
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
pub(super) fn provisioner(ctx: &mut Ctx<'_>, doc: &Value) -> (PoolOut, Option<ClassOut>) {
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
pub(super) fn nodepool_v1beta1(ctx: &mut Ctx<'_>, doc: &Value) -> PoolOut {
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::testing::convert_yaml;

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
}
