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

mod class_refs;
mod fields;
mod nodeclass;
mod nodepool;
#[cfg(test)]
mod testing;

use std::fmt;

use nodewright_core::api;
use serde_json::Value;

use class_refs::{place_kubelets, rename_provider_classes};
use fields::{Ctx, describe, flatten, metadata, name_of, object};
use nodeclass::{ClassOut, class_v1alpha1, nodeclass_v1beta1};
use nodepool::{PoolOut, nodepool_v1beta1, provisioner};

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
    pub fn to_yaml(&self) -> Result<String, crate::yaml::WriteError> {
        let mut out = String::new();
        for doc in &self.documents {
            out.push_str("---\n");
            out.push_str(&crate::yaml::to_string(doc)?);
        }
        Ok(out)
    }
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
/// Parses a converted document as `nodewright plan` would, and reports a refusal.
fn check(doc: &Value, warnings: &mut Vec<ConvertWarning>) {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let object = describe(kind, doc);
    if let Err(why) = api::parse_config_object(doc) {
        warnings.push(ConvertWarning {
            object,
            field: String::new(),
            message: format!("the converted object is not accepted by nodewright: {why}"),
        });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::testing::*;
    use super::*;

    fn requirement<'a>(pool: &'a Value, key: &str) -> Option<&'a Value> {
        pool["spec"]["template"]["spec"]["requirements"]
            .as_array()
            .expect("requirements")
            .iter()
            .find(|r| r["key"] == key)
    }

    const PROVISIONER_WITH_REF: &str = include_str!("../../fixtures/convert/v1alpha5-provider-ref.yaml");

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
    fn v1_objects_pass_through_and_the_output_is_yaml_plan_can_read() {
        let yaml = include_str!("../../../../infra/examples/default-nodepool.yaml");
        let c = convert_yaml(yaml);
        assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
        assert_eq!(c.documents, crate::yaml::all_documents(yaml).expect("YAML"));
        let again = crate::yaml::all_documents(&c.to_yaml().expect("YAML")).expect("round trip");
        assert_eq!(again, c.documents);
    }
}
