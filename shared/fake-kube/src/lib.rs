//! A faithful fake Kubernetes API server over HTTP for tests, with a simulated kubelet and
//! kube-scheduler.
//!
//! [`FakeApiServer::start`] serves the real REST paths on `127.0.0.1` (a free port) so a real
//! `kube::Client` talks to it, and fails the way the real server fails: `Status` bodies with
//! NotFound, AlreadyExists, Conflict (stale resourceVersion), Invalid, TooManyRequests (an
//! eviction a PodDisruptionBudget forbids), BadRequest, MethodNotAllowed.
//!
//! Served: core/v1 namespaces, nodes, pods (with `status`, `binding`, `eviction`), events,
//! persistentvolumeclaims, persistentvolumes; storage.k8s.io/v1 storageclasses;
//! events.k8s.io/v1 events; apps/v1 daemonsets and deployments; policy/v1
//! poddisruptionbudgets; Karpenter's `karpenter.sh/v1` nodepools and nodeclaims and
//! `karpenter.k8s.aws/v1` ec2nodeclasses. More custom resources can be registered.
//!
//! Not served, by design: watch (405), server-side apply (415), protobuf, CRD schema validation,
//! and controllers beyond the few simulated here (scheduler, kubelet, disruption budgets' status,
//! pod garbage collection on demand).

mod admission;
pub mod builders;
mod discovery;
mod error;
mod names;
mod object;
mod patch;
mod pods;
mod registry;
mod router;
mod selectors;
mod server;
mod sim;
mod store;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use error::{Cause, Error, GroupKind, GroupResource, Result};
pub use registry::{Registry, ResourceType};
pub use router::Verb;
pub use server::{RequestMatcher, RequestRecord};
pub use sim::{Bound, NodeRegistration, PodKey, Refused, ScheduleReport};

use server::{Fault, Shared, lock};
use store::State;

/// How a disruption budget limits evictions.
#[derive(Debug, Clone, PartialEq)]
pub enum Budget {
    MinAvailable(IntOrString),
    MaxUnavailable(IntOrString),
}

/// A running fake API server. Stops serving when dropped.
pub struct FakeApiServer {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeApiServer {
    /// Binds a free port on 127.0.0.1 and serves on the current tokio runtime.
    pub async fn start() -> Result<Self> {
        Self::start_with(Registry::with_defaults()).await
    }

    /// Starts with a custom set of served resources.
    pub async fn start_with(registry: Registry) -> Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(Error::Start)?;
        let address = listener.local_addr().map_err(Error::Start)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(registry, vec![pods::disruption_controller])),
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            address,
        });
        let task = tokio::spawn(server::serve(listener, shared.clone()));
        Ok(FakeApiServer { shared, task })
    }

    pub fn address(&self) -> SocketAddr {
        self.shared.address
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.address)
    }

    /// A client config for this server. kube's default retry of 429/503/504 is switched off so
    /// that a refused eviction or an injected fault reaches the caller at once; set
    /// `default_retry` back to true to test code under kube's own retries.
    pub fn config(&self) -> kube::Config {
        // The URL is built from a socket address, so it always parses.
        let uri = self
            .url()
            .parse::<http::Uri>()
            .unwrap_or_else(|_| http::Uri::from_static("http://127.0.0.1"));
        let mut config = kube::Config::new(uri);
        config.default_retry = false;
        config
    }

    /// A real `kube::Client` talking to this server (default namespace `default`).
    pub fn client(&self) -> Result<kube::Client> {
        kube::Client::try_from(self.config()).map_err(Error::Client)
    }

    /// Serves another resource, e.g. a custom resource of a new CRD.
    pub fn register(&self, resource: ResourceType) {
        lock(&self.shared.state).registry.add(resource);
    }

    /// Sets the clock used for timestamps (creation, deletion, conditions).
    pub fn set_clock(&self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) {
        lock(&self.shared.state).set_clock(Arc::new(clock));
    }

    /// The latest resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared.state).revision()
    }

    /// Stores an object (typed or JSON, with `apiVersion` and `kind`) as a test fixture:
    /// created if new, replaced if not, without resourceVersion checks or update-only rules.
    /// Keeps the `status`, `uid`, `creationTimestamp` and `deletionTimestamp` it carries;
    /// creates its namespace if missing (`default` when it names none). It is still decoded,
    /// defaulted and validated, and gets a new resourceVersion.
    pub fn insert<T: Serialize>(&self, object: &T) -> Result<Value> {
        let body = serde_json::to_value(object)
            .map_err(|e| Error::BadRequest(format!("cannot serialize the object: {e}")))?;
        lock(&self.shared.state).insert(body)
    }

    /// Inserts and returns the stored object typed.
    pub fn insert_typed<K: Serialize + DeserializeOwned>(&self, object: &K) -> Result<K> {
        decode(self.insert(object)?)
    }

    /// A stored object, addressed by resource name (`pods`, `nodepools.karpenter.sh`).
    pub fn get_object(&self, resource: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let state = lock(&self.shared.state);
        let rt = state.resource(resource)?;
        state.lookup(&rt, namespace.unwrap_or_default(), name).cloned()
    }

    /// Stored objects of a resource in API order; `namespace: None` lists all namespaces.
    pub fn list_objects(&self, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        let state = lock(&self.shared.state);
        let Some(rt) = state.resource(resource) else {
            return Vec::new();
        };
        state.objects(&rt, namespace).cloned().collect()
    }

    /// A stored object of a k8s-openapi type.
    pub fn get<K: k8s_openapi::Resource + DeserializeOwned>(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<K> {
        let key = self.key_of::<K>()?;
        self.get_object(&key, namespace, name)
            .and_then(|v| serde_json::from_value(v).ok())
    }

    /// Stored objects of a k8s-openapi type; `namespace: None` lists all namespaces.
    pub fn list<K: k8s_openapi::Resource + DeserializeOwned>(&self, namespace: Option<&str>) -> Vec<K> {
        let Some(key) = self.key_of::<K>() else {
            return Vec::new();
        };
        self.list_objects(&key, namespace)
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect()
    }

    fn key_of<K: k8s_openapi::Resource>(&self) -> Option<String> {
        let state = lock(&self.shared.state);
        state
            .registry
            .find_kind(K::API_VERSION, K::KIND)
            .map(ResourceType::key)
    }

    /// Deletes as the API does (finalizers hold the object with a deletionTimestamp). Returns
    /// the object and whether it is gone.
    pub fn delete_object(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(Value, bool)> {
        let mut state = lock(&self.shared.state);
        let rt = state.resource(resource).ok_or(Error::PathNotFound)?;
        state.delete(&rt, namespace.unwrap_or_default(), name, &Value::Null)
    }

    /// Puts a policy/v1 PodDisruptionBudget selecting pods by labels.
    pub fn set_pdb<'a>(
        &self,
        namespace: &str,
        name: &str,
        match_labels: impl IntoIterator<Item = (&'a str, &'a str)>,
        budget: Budget,
    ) -> Result<PodDisruptionBudget> {
        let labels: serde_json::Map<String, Value> = match_labels
            .into_iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let (field, value) = match budget {
            Budget::MinAvailable(v) => ("minAvailable", v),
            Budget::MaxUnavailable(v) => ("maxUnavailable", v),
        };
        let body = json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"matchLabels": labels}, field: value},
        });
        let stored = self.insert(&body)?;
        // Read back: the status the disruption controller wrote after the insert.
        let current = self
            .get_object("poddisruptionbudgets.policy", Some(namespace), name)
            .unwrap_or(stored);
        decode(current)
    }

    /// The kubelet registering a node: Ready, with the given labels, taints and allocatable.
    pub fn register_node(&self, node: NodeRegistration) -> Result<Node> {
        decode(sim::register_node(&mut lock(&self.shared.state), node)?)
    }

    /// Flips the node's Ready condition (and the not-ready NoSchedule taint with it).
    pub fn set_node_ready(&self, name: &str, ready: bool) -> Result<Node> {
        decode(sim::set_node_ready(&mut lock(&self.shared.state), name, ready)?)
    }

    /// One round of kube-scheduler and kubelet: starts bound pending pods, binds each pending
    /// unbound pod, by priority then age, to the least allocated node where it fits (the
    /// simulator's kube-scheduler, [`nodewright_sim::kube_scheduler`]) and starts it, and marks
    /// the rest PodScheduled=False/Unschedulable with the scheduler's message.
    pub fn schedule_pending(&self) -> Result<ScheduleReport> {
        sim::schedule_pending(&mut lock(&self.shared.state))
    }

    /// Pod garbage collection: deletes pods bound to nodes that no longer exist.
    pub fn gc_orphaned_pods(&self) -> Result<Vec<PodKey>> {
        sim::gc_orphaned_pods(&mut lock(&self.shared.state))
    }

    /// Makes `/version` report Kubernetes `1.<minor>` (1.34 by default), to agree with what a
    /// test configures its clients with.
    pub fn set_minor_version(&self, minor: u32) {
        lock(&self.shared.state).minor_version = minor;
    }

    /// Every request served so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Makes the next `times` requests that match fail with `code` (and the `Status` reason
    /// the real server gives for it) before reaching the store.
    pub fn fail_next(&self, matcher: RequestMatcher, code: u16, times: usize) {
        lock(&self.shared.faults).push(Fault {
            matcher,
            code,
            remaining: times,
        });
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn decode<K: DeserializeOwned>(value: Value) -> Result<K> {
    serde_json::from_value(value).map_err(|e| Error::Internal(format!("stored object does not decode: {e}")))
}
