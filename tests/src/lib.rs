//! The end-to-end world: moto (EC2, SSM, DynamoDB, SQS) and the fake Kubernetes API server,
//! the webhook and provisioner handlers wired to them exactly as their entry points wire the
//! real services, and a simulated kubelet that registers a Node for every instance launched.
//!
//! Events go where Lambda would take them: an AdmissionReview per pod, built from the pod the
//! API server holds, into the webhook's Function URL handler; the messages the webhook put on
//! the provision queue, read back from SQS, as the SQS event the provisioner gets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use aws_sdk_sqs::types::QueueAttributeName;
use k8s_openapi::api::core::v1::{Node, Pod};
use lambda_runtime::{Context, LambdaEvent};
use nodewright_aws::claims::{DynamoClaimStore, create_table};
use nodewright_aws::queue::ProvisionQueue;
use nodewright_aws::testing::{Moto, take_messages};
use nodewright_aws::{RetryPolicy, SystemClock};
use nodewright_core::api::{ConfigObject, parse_config_object};
use nodewright_core::ports::{CLAIM_TAG, Cloud, Instance};
use nodewright_fake_kube::builders;
use nodewright_fake_kube::{FakeApiServer, NodeRegistration};
use nodewright_kube::{ClusterInfo, KubeCluster};
use nodewright_manifests::yaml;
use nodewright_provisioner::{LiveProvisioner, ProvisionerConfig, assemble};
use nodewright_webhook::{Webhook, WebhookConfig};
use serde_json::{Value, json};

/// The Kubernetes groups the stack's access entries put the functions in (`template.yaml`).
pub const PROVISIONER_GROUP: &str = "nodewright:provisioner";
pub const SWEEPER_GROUP: &str = "nodewright:sweeper";
pub const SECRET: &str = "e2e-secret-0123456789";
pub const KUBERNETES_VERSION: &str = "1.32";
/// base64 of a PEM-shaped placeholder: the CA only ends up in user data here.
pub const CA: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCnRlc3QKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=";
/// base64 of a real self-signed certificate (`openssl req -x509`, P-256, 100 years), for the
/// bootstraps: their Kubernetes client parses the CA it is given, even over http.
pub const PARSEABLE_CA: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJrakNDQVRlZ0F3SUJBZ0lVUS9mN2FkQ3ZqUkRIajdDTmozVlY4eU4vYXpBd0NnWUlLb1pJemowRUF3SXcKSFRFYk1Ca0dBMVVFQXd3U2JtOWtaWGR5YVdkb2RDMTBaWE4wTFdOaE1DQVhEVEkyTVRJd01USXhNakl3TjFvWQpEekl4TWpZeE1UQTNNakV5TWpBM1dqQWRNUnN3R1FZRFZRUUREQkp1YjJSbGQzSnBaMmgwTFhSbGMzUXRZMkV3CldUQVRCZ2NxaGtqT1BRSUJCZ2dxaGtqT1BRTUJCd05DQUFTaHFpTlBYREtKMjhwMEp0TXVvUm4waUQrWXhtd1AKL3g4czRMNGk0WWY5ajZXME95Q1REVHNrSmd4M1MyRWI3bUpMQzZsUmlTQS9vYTIyaXUxalFxMTlvMU13VVRBZApCZ05WSFE0RUZnUVVkdEN2emJhRDBrQ1NYbmVVdVB5eGZiTFY5ekl3SHdZRFZSMGpCQmd3Rm9BVWR0Q3Z6YmFECjBrQ1NYbmVVdVB5eGZiTFY5ekl3RHdZRFZSMFRBUUgvQkFVd0F3RUIvekFLQmdncWhrak9QUVFEQWdOSkFEQkcKQWlFQXJRam9mUDVlUU5BWEg0cnoyVXNSMEtZQTlFUG4rUEI3VmlUZkwyaWswazhDSVFEY0NrSmRia0hKZlM2cwpMS1dtbmREYVNYbFYyTjhyZklINW5wU3UrQ2FmK1E9PQotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==";

/// The getting-started NodePool and EC2NodeClass of the project's docs, for `cluster`, with
/// the NodePool's cpu limit set to `cpu_limit`.
pub fn getting_started(cluster: &str, cpu_limit: u32) -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/examples/default-nodepool.yaml"
    );
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .replace("my-cluster", cluster);
    yaml::all_documents(&text)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .into_iter()
        .map(|mut value| {
            if value["kind"] == "NodePool" {
                value["spec"]["limits"]["cpu"] = json!(cpu_limit);
            }
            value
        })
        .collect()
}

pub struct World {
    pub name: String,
    pub kube: FakeApiServer,
    pub ec2: aws_sdk_ec2::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub queue_url: String,
    pub queue_arn: String,
    pub webhook: Webhook<ProvisionQueue>,
    pub provisioner: LiveProvisioner,
    pub store: DynamoClaimStore,
    /// Requests already checked against `infra/rbac.yaml` (see [`World::assert_rbac_allows`]).
    rbac_checked: std::sync::Mutex<usize>,
}

impl World {
    /// A fresh cluster `name`: network, claims table and FIFO queue in moto, the getting-started
    /// manifests applied to a fresh API server, and both handlers built as at cold start.
    pub async fn new(name: &str, cpu_limit: u32) -> World {
        // One moto per test binary; every world uses its own cluster name, table and queue.
        let moto = Moto::shared();
        let sdk = moto.sdk_config();
        moto.create_network(name).await;
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let table = format!("{name}-claims");
        create_table(&dynamodb, &table).await.expect("claims table");
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let queue_url = sqs
            .create_queue()
            .queue_name(format!("{name}-provision.fifo"))
            .attributes(QueueAttributeName::FifoQueue, "true")
            .send()
            .await
            .expect("queue")
            .queue_url
            .expect("queue url");
        let queue_arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}-provision.fifo");

        let kube = FakeApiServer::start().await.expect("fake API server");
        for object in getting_started(name, cpu_limit) {
            kube.insert(&object).expect("apply the getting-started manifests");
        }

        let webhook_config = WebhookConfig::from_env(|k| match k {
            nodewright_webhook::config::SECRET => Some(SECRET.to_string()),
            nodewright_webhook::config::QUEUE_URL => Some(queue_url.clone()),
            _ => None,
        })
        .expect("webhook config");
        let queue = ProvisionQueue::new(&sdk, &queue_url, &quick_retries());
        let webhook = Webhook::new(webhook_config, queue, Arc::new(SystemClock));

        let config = ProvisionerConfig::from_env(|k| match k {
            nodewright_provisioner::config::CLUSTER_NAME => Some(name.to_string()),
            nodewright_provisioner::config::CLAIMS_TABLE => Some(table.clone()),
            nodewright_provisioner::config::REGION => Some("us-east-1".to_string()),
            _ => None,
        })
        .expect("provisioner config");
        let info = ClusterInfo {
            name: name.to_string(),
            endpoint: kube.url(),
            certificate_authority: CA.to_string(),
            kubernetes_version: KUBERNETES_VERSION.to_string(),
            service_cidr: Some("10.100.0.0/16".to_string()),
        };
        let cluster = KubeCluster::from_config(kube.config()).expect("kube client");
        let provisioner =
            assemble(&config, &sdk, cluster, &info, Arc::new(SystemClock)).expect("provisioner");
        let store = DynamoClaimStore::new(dynamodb.clone(), &table, name, Arc::new(SystemClock));
        World {
            name: name.to_string(),
            kube,
            ec2,
            sqs,
            dynamodb,
            queue_url,
            queue_arn,
            webhook,
            provisioner,
            store,
            rbac_checked: std::sync::Mutex::new(0),
        }
    }

    /// `count` pods of a Deployment requesting `cpu` each, which the scheduler then marks
    /// Unschedulable (there are no nodes yet).
    pub fn create_pending_pods(&self, app: &str, count: usize, cpu: &str) {
        self.create_pending_pods_with(app, count, cpu, json!({}));
    }

    /// [`World::create_pending_pods`] with `spec` merged into each pod's spec (affinity…).
    pub fn create_pending_pods_with(&self, app: &str, count: usize, cpu: &str, spec: Value) {
        for i in 0..count {
            let mut pod = builders::pod(&format!("{app}-{i}"))
                .label("app", app)
                .owned_by("ReplicaSet", &format!("{app}-rs"))
                .cpu(cpu)
                .json();
            if let (Some(target), Some(extra)) = (pod["spec"].as_object_mut(), spec.as_object()) {
                target.extend(extra.clone());
            }
            self.kube.insert(&pod).expect("create pod");
        }
        self.kube.schedule_pending().expect("scheduler pass");
    }

    /// The AdmissionReview the API server sends for the kube-scheduler's status update of each
    /// unschedulable pod, through the webhook's handler. Returns the HTTP statuses.
    pub async fn deliver_admission_reviews(&self) -> Vec<i64> {
        let mut statuses = Vec::new();
        for event in self.admission_reviews() {
            let response = nodewright_webhook::function_handler(
                &self.webhook,
                LambdaEvent::new(event, Context::default()),
            )
            .await
            .expect("webhook handled");
            statuses.push(response.status_code);
        }
        statuses
    }

    /// The Function URL calls the API server makes for the pods the scheduler marked
    /// Unschedulable: one status-update AdmissionReview each.
    pub fn admission_reviews(&self) -> Vec<LambdaFunctionUrlRequest> {
        let mut events = Vec::new();
        for (i, pod) in self.kube.list::<Pod>(Some("default")).into_iter().enumerate() {
            let unschedulable = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.reason.as_deref() == Some("Unschedulable")));
            if !unschedulable {
                continue;
            }
            let object = serde_json::to_value(&pod).expect("pod JSON");
            let review = json!({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": format!("{}-review-{i}", self.name),
                    "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "subResource": "status",
                    "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                    "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                    "requestSubResource": "status",
                    "name": pod.metadata.name,
                    "namespace": pod.metadata.namespace,
                    "operation": "UPDATE",
                    "userInfo": {"username": "system:kube-scheduler", "groups": ["system:authenticated"]},
                    "object": object,
                    "oldObject": object,
                    "dryRun": false,
                    "options": {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"},
                },
            });
            events.push(function_url_request(SECRET, &review.to_string()));
        }
        events
    }

    /// The environment the stack gives the provisioner's functions (`template.yaml`), pointing
    /// at this world, plus what Lambda itself sets for credentials and region.
    pub fn provisioner_environment(&self) -> Vec<(String, String)> {
        let mut env = Moto::shared().lambda_environment();
        for (key, value) in [
            (nodewright_provisioner::config::CLUSTER_NAME, self.name.clone()),
            (
                nodewright_provisioner::config::CLAIMS_TABLE,
                format!("{}-claims", self.name),
            ),
            (nodewright_provisioner::config::REGION, "us-east-1".to_string()),
            (nodewright_provisioner::config::CLUSTER_ENDPOINT, self.kube.url()),
            (
                nodewright_provisioner::config::CLUSTER_CA,
                PARSEABLE_CA.to_string(),
            ),
            (
                nodewright_provisioner::config::SERVICE_CIDR,
                "10.100.0.0/16".to_string(),
            ),
            (
                nodewright_provisioner::config::KUBERNETES_VERSION,
                KUBERNETES_VERSION.to_string(),
            ),
        ] {
            env.push((key.to_string(), value));
        }
        env
    }

    /// The schedule event EventBridge Scheduler delivers every minute.
    pub fn schedule_event(&self) -> Value {
        json!({
            "version": "0",
            "id": format!("{}-{}", self.name, nanos()),
            "detail-type": "Scheduled Event",
            "source": "aws.scheduler",
            "account": "123456789012",
            "time": "2026-12-01T12:00:00Z",
            "region": "us-east-1",
            "resources": ["arn:aws:scheduler:us-east-1:123456789012:schedule/default/nodewright"],
            "detail": {},
        })
    }

    /// The SQS event Lambda's event source mapping would deliver for the messages now on the
    /// provision queue (they are deleted, as a successful invocation would have them).
    pub async fn take_sqs_event(&self) -> Value {
        let records: Vec<Value> = take_messages(&self.sqs, &self.queue_url)
            .await
            .into_iter()
            .map(|m| {
                let attributes: BTreeMap<String, String> = m
                    .attributes
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k.as_str().to_string(), v))
                    .collect();
                json!({
                    "messageId": m.message_id,
                    "receiptHandle": m.receipt_handle,
                    "body": m.body,
                    "attributes": attributes,
                    "messageAttributes": {},
                    "md5OfBody": m.md5_of_body,
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.queue_arn,
                    "awsRegion": "us-east-1",
                })
            })
            .collect();
        json!({ "Records": records })
    }

    /// The provisioner's handler with the minute's EventBridge schedule event.
    pub async fn run_schedule(&self) -> Value {
        self.run_provisioner(self.schedule_event()).await
    }

    /// The provisioner's handler with `event`; returns what it returned to Lambda.
    pub async fn run_provisioner(&self, event: Value) -> Value {
        let mut context = Context::default();
        context.request_id = format!("{}-{}", self.name, nanos());
        self.rbac_mark();
        let response =
            nodewright_provisioner::function_handler(&self.provisioner, LambdaEvent::new(event, context))
                .await
                .expect("provisioner handled");
        self.assert_rbac_allows(PROVISIONER_GROUP);
        response
    }

    /// This cluster's instances that are not terminated.
    pub async fn instances(&self) -> Vec<Instance> {
        self.provisioner
            .cloud
            .list_instances()
            .await
            .expect("list instances")
    }

    /// The simulated kubelet, as strict as the real one: a Node, Ready, for every instance
    /// without one (but `skip`), registered with only the labels and taints its user data
    /// passes (`--node-labels`, `--register-with-taints`, read back from EC2), those the kubelet
    /// sets itself (hostname, arch, os) and those the cloud controller sets (instance type,
    /// zone, region), and the catalog's allocatable. Returns the nodes registered.
    pub async fn kubelet_except(&self, skip: &[String]) -> Vec<String> {
        let (classes, _) = nodewright_core::ports::Cluster::list_nodeclasses(&self.provisioner.cluster)
            .await
            .expect("nodeclasses");
        let catalog = self
            .provisioner
            .cloud
            .catalog(classes.first().expect("a node class"))
            .await
            .expect("catalog");
        let registered: Vec<String> = self
            .kube
            .list::<Node>(None)
            .into_iter()
            .filter_map(|n| n.spec.and_then(|s| s.provider_id))
            .collect();
        let mut out = Vec::new();
        for instance in self.instances().await {
            let provider_id = format!("aws:///{}/{}", instance.zone, instance.id);
            if registered.contains(&provider_id) || skip.contains(&instance.id) {
                continue;
            }
            let t = catalog.get(&instance.instance_type).expect("a catalog type");
            let name = instance
                .private_dns_name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| format!("{}.ec2.internal", instance.id));
            let flags = self.kubelet_flags(&instance.id).await;
            let mut labels: BTreeMap<String, String> = flags
                .get("--node-labels")
                .map(|v| split_pairs(v).collect())
                .unwrap_or_default();
            for key in ["kubernetes.io/arch", "kubernetes.io/os"] {
                if let Some(v) = t.labels.get(key) {
                    labels.insert(key.into(), v.clone());
                }
            }
            labels.insert("kubernetes.io/hostname".into(), name.clone());
            labels.insert(
                "node.kubernetes.io/instance-type".into(),
                instance.instance_type.clone(),
            );
            labels.insert("topology.kubernetes.io/zone".into(), instance.zone.clone());
            labels.insert("topology.kubernetes.io/region".into(), "us-east-1".into());
            let mut registration = NodeRegistration::new(name.clone())
                .labels(labels)
                .provider_id(provider_id);
            for taint in flags
                .get("--register-with-taints")
                .map(String::as_str)
                .unwrap_or("")
                .split(',')
            {
                // key=value:Effect or key:Effect
                let Some((kv, effect)) = taint.rsplit_once(':') else {
                    continue;
                };
                let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
                registration = registration.taint(key, value, effect);
            }
            for (resource, quantity) in t.allocatable.to_quantity_map() {
                registration = registration.allocatable(resource, quantity);
            }
            self.kube.register_node(registration).expect("register node");
            out.push(name);
        }
        out
    }

    /// [`World::kubelet_except`] for every instance.
    pub async fn kubelet(&self) -> Vec<String> {
        self.kubelet_except(&[]).await
    }

    /// The kubelet flags an instance's user data gives (an AL2023 NodeConfig), by flag name.
    async fn kubelet_flags(&self, instance_id: &str) -> BTreeMap<String, String> {
        use base64::Engine;
        let attribute = self
            .ec2
            .describe_instance_attribute()
            .instance_id(instance_id)
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
            .send()
            .await
            .expect("user data");
        let encoded = attribute
            .user_data()
            .and_then(|u| u.value())
            .expect("the instance has user data");
        let text = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64 user data");
        let text = String::from_utf8(text).expect("utf-8 user data");
        let parts = nodewright_aws::userdata::mime::parse(&text).expect("MIME user data");
        let mut flags = BTreeMap::new();
        for part in parts {
            let Ok(doc) = yaml::from_str::<Value>(&part.body) else {
                continue;
            };
            if doc["kind"].as_str() != Some("NodeConfig") {
                continue;
            }
            for flag in doc["spec"]["kubelet"]["flags"].as_array().into_iter().flatten() {
                if let Some((k, v)) = flag.as_str().and_then(|f| f.split_once('=')) {
                    flags.insert(k.to_string(), v.to_string());
                }
            }
        }
        flags
    }

    /// Pods bound to a node.
    pub fn bound_pods(&self) -> usize {
        self.kube
            .list::<Pod>(Some("default"))
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
            .count()
    }

    /// The claim id an instance is tagged with.
    pub fn claim_of(instance: &Instance) -> Option<&str> {
        instance.tags.get(CLAIM_TAG).map(String::as_str)
    }
}

/// `k=v,k2=v2` as pairs.
fn split_pairs(list: &str) -> impl Iterator<Item = (String, String)> + '_ {
    list.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
}

/// A Function URL request to `/<path>` carrying `body`, shaped as Lambda delivers it.
pub fn function_url_request(path: &str, body: &str) -> LambdaFunctionUrlRequest {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../functions/webhook/tests/fixtures/function-url-request.json"
    );
    let text = std::fs::read_to_string(fixture).unwrap_or_else(|e| panic!("{fixture}: {e}"));
    let mut event: Value = serde_json::from_str(&text).expect("fixture");
    event["rawPath"] = Value::String(format!("/{path}"));
    event["requestContext"]["http"]["path"] = Value::String(format!("/{path}"));
    event["body"] = Value::String(body.to_string());
    serde_json::from_value(event).expect("a Function URL request")
}

/// The median of some measurements (NaN for none), for the measuring binaries.
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// The webhook's retry policy in Lambda: two quick attempts.
pub fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        attempt_timeout: Duration::from_secs(2),
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Parses a manifest the way the cluster's strict reader does (used to check the example).
pub fn parses(object: &Value) -> bool {
    matches!(
        parse_config_object(object),
        Ok(ConfigObject::NodePool(_) | ConfigObject::Ec2NodeClass(_))
    )
}

/// The cluster access `infra/rbac.yaml` grants the group `group`: `(apiGroup, resource, verb)`,
/// a subresource written `pods/eviction`.
pub fn rbac_grants(group: &str) -> std::collections::BTreeSet<(String, String, String)> {
    let text = include_str!("../../infra/rbac.yaml");
    let docs = yaml::all_documents(text).expect("rbac.yaml is YAML");
    let roles: Vec<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRoleBinding")
        .filter(|d| {
            d["subjects"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["kind"] == "Group" && s["name"] == group))
        })
        .filter_map(|d| d["roleRef"]["name"].as_str())
        .collect();
    let mut out = std::collections::BTreeSet::new();
    for role in docs.iter().filter(|d| {
        d["kind"] == "ClusterRole" && roles.contains(&d["metadata"]["name"].as_str().unwrap_or(""))
    }) {
        for rule in role["rules"].as_array().into_iter().flatten() {
            let strings = |key: &str| -> Vec<String> {
                rule[key]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            };
            for g in strings("apiGroups") {
                for r in strings("resources") {
                    for v in strings("verbs") {
                        out.insert((g.clone(), r.clone(), v));
                    }
                }
            }
        }
    }
    out
}

/// `(apiGroup, resource[/subresource], verb)` of a request to a resource path; `None` for
/// discovery and other paths every authenticated client may read.
pub fn rbac_attributes(request: &nodewright_fake_kube::RequestRecord) -> Option<(String, String, String)> {
    use nodewright_fake_kube::Verb;
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, resource, more @ ..] => [&[*resource][..], more].concat(),
        other => other.to_vec(),
    };
    let resource = match rest.as_slice() {
        [] => return None,
        [resource] | [resource, _] => resource.to_string(),
        [resource, _, sub, ..] => format!("{resource}/{sub}"),
    };
    let verb = match request.verb? {
        Verb::Get => "get",
        Verb::List => "list",
        Verb::Watch => "watch",
        Verb::Create => "create",
        Verb::Update => "update",
        Verb::Patch => "patch",
        Verb::Delete => "delete",
        Verb::DeleteCollection => "deletecollection",
    };
    Some((group.to_string(), resource, verb.to_string()))
}

impl World {
    /// Starts counting requests as a handler's (see [`World::assert_rbac_allows`]).
    pub fn rbac_mark(&self) {
        *self.rbac_checked.lock().unwrap_or_else(|p| p.into_inner()) = self.kube.requests().len();
    }

    /// Every request the API server took since [`World::rbac_mark`] was one `infra/rbac.yaml`
    /// grants `group` (a function's access entry group).
    pub fn assert_rbac_allows(&self, group: &str) {
        let grants = rbac_grants(group);
        assert!(!grants.is_empty(), "rbac.yaml binds no role to {group}");
        let requests = self.kube.requests();
        let mut checked = self.rbac_checked.lock().unwrap_or_else(|p| p.into_inner());
        let denied: Vec<String> = requests
            .iter()
            .skip(*checked)
            .filter_map(rbac_attributes)
            .filter(|a| !grants.contains(a))
            .map(|(g, r, v)| format!("{v} {r} (apiGroup {g:?})"))
            .collect();
        *checked = requests.len();
        assert!(denied.is_empty(), "{group} is not granted: {denied:?}");
    }
}
