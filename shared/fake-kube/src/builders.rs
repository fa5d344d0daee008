//! Kubernetes objects for tests, with defaults to change: `pod("web").cpu("500m").build()`,
//! or `.json()` for the JSON [`crate::FakeApiServer::insert`] takes. The tests of this crate,
//! of the Kubernetes adapter and end to end build their pods here.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, Pod, PodCondition, PodSpec, PodStatus, ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct PodBuilder {
    pod: Pod,
}

/// A pod in `default` with one container `app` (image `nginx`) and no requests.
pub fn pod(name: &str) -> PodBuilder {
    PodBuilder {
        pod: Pod {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some("default".to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("nginx".into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: None,
        },
    }
}

impl PodBuilder {
    fn spec(&mut self) -> &mut PodSpec {
        self.pod.spec.get_or_insert_with(PodSpec::default)
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        self.pod.metadata.namespace = Some(namespace.to_string());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.pod
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_string(), value.to_string());
        self
    }

    pub fn request(mut self, resource: &str, amount: &str) -> Self {
        let container = &mut self.spec().containers[0];
        container
            .resources
            .get_or_insert_with(ResourceRequirements::default)
            .requests
            .get_or_insert_with(BTreeMap::new)
            .insert(resource.to_string(), Quantity(amount.to_string()));
        self
    }

    pub fn cpu(self, amount: &str) -> Self {
        self.request("cpu", amount)
    }

    pub fn memory(self, amount: &str) -> Self {
        self.request("memory", amount)
    }

    pub fn node_selector(mut self, key: &str, value: &str) -> Self {
        self.spec()
            .node_selector
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_string(), value.to_string());
        self
    }

    pub fn tolerate(mut self, key: &str, effect: &str) -> Self {
        self.spec()
            .tolerations
            .get_or_insert_with(Vec::new)
            .push(Toleration {
                key: Some(key.to_string()),
                operator: Some("Exists".into()),
                effect: Some(effect.to_string()),
                ..Toleration::default()
            });
        self
    }

    pub fn node(mut self, node: &str) -> Self {
        self.spec().node_name = Some(node.to_string());
        self
    }

    /// Running and Ready, as the kubelet reports a healthy pod.
    pub fn running(mut self) -> Self {
        let condition = |kind: &str| PodCondition {
            type_: kind.to_string(),
            status: "True".into(),
            ..PodCondition::default()
        };
        self.pod.status = Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![condition("Ready"), condition("PodScheduled")]),
            ..PodStatus::default()
        });
        self
    }

    /// Controlled by a `kind` (`ReplicaSet`, `DaemonSet`, …) named `name`.
    pub fn owned_by(mut self, kind: &str, name: &str) -> Self {
        self.pod.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: format!("{name}-uid"),
            controller: Some(true),
            ..OwnerReference::default()
        }]);
        self
    }

    /// Pending, marked Unschedulable by the kube-scheduler.
    pub fn unschedulable(mut self) -> Self {
        self.pod.status = Some(PodStatus {
            phase: Some("Pending".into()),
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".into(),
                status: "False".into(),
                reason: Some("Unschedulable".into()),
                message: Some("0/0 nodes are available".into()),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        self
    }

    pub fn build(self) -> Pod {
        self.pod
    }

    /// The pod as JSON, `apiVersion` and `kind` included.
    pub fn json(self) -> Value {
        match serde_json::to_value(&self.pod) {
            Ok(value) => value,
            Err(e) => panic!("a pod serializes: {e}"),
        }
    }
}
