//! v1alpha1 AWSNodeTemplate (or a Provisioner's inline provider) and v1beta1 EC2NodeClass →
//! v1 EC2NodeClass.

use std::collections::BTreeMap;

use nodewright_core::api;
use serde_json::{Map, Value, json};

use super::fields::{
    Ctx, array, insert_nonempty_list, insert_nonempty_map, join, metadata, object, string, string_map,
};
use super::{AMI_PLACEHOLDER, NODECLASS_KIND, ROLE_PLACEHOLDER};

/// The AMI families v1 resolves with an alias (`al2@latest`, …).
const ALIAS_FAMILIES: &[&str] = &["AL2", "AL2023", "Bottlerocket", "Windows2019", "Windows2022"];

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

pub(super) struct ClassOut {
    pub(super) name: String,
    /// The class as converted, before any NodePool's kubelet moved in.
    pub(super) base: Value,
    pub(super) value: Value,
    /// Copies for NodePools whose kubelet differs from the first one's.
    pub(super) copies: Vec<Value>,
    /// The index of the Provisioner whose inline provider it came from.
    pub(super) from_provider: Option<usize>,
    /// Kubelet already in place: `Some` for a v1 class read as it is.
    pub(super) kubelet: Option<Option<Map<String, Value>>>,
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
pub(super) fn class_v1alpha1(
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
pub(super) fn nodeclass_v1beta1(ctx: &mut Ctx<'_>, doc: &Value) -> ClassOut {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
