//! [`KubeCluster`]: the core's [`Cluster`] port over the Kubernetes API with kube-rs.
//!
//! Every list is paginated (`limit`/`continue`). Server-side selectors narrow what comes over
//! the wire, and the same conditions are checked again here: a server (or an aggregated API in
//! front of it) that ignores a field selector must not make nodewright launch for bound pods.
//! Objects that fail conversion are skipped with a warning naming them; one bad pod never
//! stops a round.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::apps::v1::DaemonSet as K8sDaemonSet;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::{
    Namespace as K8sNamespace, Node as K8sNode, Pod as K8sPod, Taint as K8sTaint,
};
use k8s_openapi::api::core::v1::{PersistentVolume as K8sPv, PersistentVolumeClaim as K8sPvc};
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::api::policy::v1::PodDisruptionBudget as K8sPdb;
use k8s_openapi::api::storage::v1::StorageClass as K8sStorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, EvictParams, ListParams, Patch, PatchParams, PostParams,
};
use kube::core::{GroupVersionKind, TypeMeta};
use kube::{Client, Config};
use nodewright_core::api::{ConfigObject, Ec2NodeClass, NodePool, parse_config_object};
use nodewright_core::config_status::{ConfigKind, StatusUpdate};
use nodewright_core::events::{KubeEvent, Regarding};
use nodewright_core::labels;
use nodewright_core::pending::{PodState, Seen, waits_for_capacity};
use nodewright_core::pod::{Node, Pod, Taint, TaintEffect};
use nodewright_core::ports::{Cluster, DaemonSet, ErrorKind, Eviction, NodePatch, PortError, PortResult};
use serde::de::DeserializeOwned;
use tokio::sync::RwLock;

use crate::errors::{from_kube, status_code};

/// Objects per list page: large enough that a 5,000-pod cluster takes a few round trips, small
/// enough that one page stays well under the API server's response limits.
pub const PAGE_SIZE: u32 = 500;
/// Attempts for a read-modify-write that keeps losing to other writers.
const CONFLICT_ATTEMPTS: usize = 5;
/// Times a listing starts over when its continue token expires.
const LIST_RESTARTS: usize = 2;

/// Where the cluster's connection settings come from, and whether they expire (EKS tokens do).
pub trait ConfigSource: Send + Sync {
    /// A configuration to connect with, fresh enough to use for `valid_for`.
    fn config(&self) -> std::pin::Pin<Box<dyn Future<Output = PortResult<Config>> + Send + '_>>;
    /// How long a configuration from [`ConfigSource::config`] may be used.
    fn valid_for(&self) -> Option<Duration>;
}

/// The two clients: one with kube's default retries (429/503/504 with backoff), one without,
/// for evictions, where 429 is an answer (a PodDisruptionBudget forbids it) and not a hiccup.
#[derive(Clone)]
struct Clients {
    client: Client,
    evictions: Client,
    /// When the configuration was asked for, before its token was signed. Wall-clock time,
    /// since that is what the token's expiry is judged by, and a frozen Lambda sandbox may not
    /// advance a monotonic clock while it sleeps.
    made_at: SystemTime,
}

/// How long connecting to the API server may take: a healthy endpoint answers in well under a
/// second; kube's default (none) would let a black-holed endpoint eat the whole invocation.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one response may take: a page of 500 pods is well inside it. kube's default is
/// five minutes, the provisioner's whole timeout.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

impl Clients {
    fn new(mut config: Config, made_at: SystemTime) -> PortResult<Self> {
        config.connect_timeout = Some(
            config
                .connect_timeout
                .map_or(CONNECT_TIMEOUT, |t| t.min(CONNECT_TIMEOUT)),
        );
        config.read_timeout = Some(config.read_timeout.map_or(READ_TIMEOUT, |t| t.min(READ_TIMEOUT)));
        config.write_timeout = Some(config.write_timeout.map_or(READ_TIMEOUT, |t| t.min(READ_TIMEOUT)));
        let mut no_retry = config.clone();
        no_retry.default_retry = false;
        let build = |c: Config| Client::try_from(c).map_err(|e| from_kube("build the Kubernetes client", e));
        Ok(Clients {
            client: build(config)?,
            evictions: build(no_retry)?,
            made_at,
        })
    }

    fn fresh_for(&self, valid_for: Duration) -> bool {
        // A clock that stepped back makes the age unknown: renew rather than guess.
        SystemTime::now()
            .duration_since(self.made_at)
            .is_ok_and(|age| age < valid_for)
    }

    async fn from_source(source: &dyn ConfigSource) -> PortResult<Self> {
        let asked_at = SystemTime::now();
        Clients::new(source.config().await?, asked_at)
    }
}

/// The Kubernetes API as the core's [`Cluster`].
pub struct KubeCluster {
    clients: RwLock<Clients>,
    source: Option<Arc<dyn ConfigSource>>,
    page_size: u32,
}

impl std::fmt::Debug for KubeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeCluster")
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

impl KubeCluster {
    /// A cluster reached with a fixed configuration (a kubeconfig, or a test server).
    pub fn from_config(config: Config) -> PortResult<Self> {
        Ok(KubeCluster {
            clients: RwLock::new(Clients::new(config, SystemTime::now())?),
            source: None,
            page_size: PAGE_SIZE,
        })
    }

    /// A cluster whose configuration is renewed from `source` before it expires (EKS tokens
    /// live 15 minutes).
    pub async fn from_source(source: Arc<dyn ConfigSource>) -> PortResult<Self> {
        let clients = Clients::from_source(source.as_ref()).await?;
        Ok(KubeCluster {
            clients: RwLock::new(clients),
            source: Some(source),
            page_size: PAGE_SIZE,
        })
    }

    /// Lists in pages of `page_size` (tests use small pages to see pagination happen).
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    async fn clients(&self) -> PortResult<Clients> {
        let current = self.clients.read().await.clone();
        let Some(source) = &self.source else {
            return Ok(current);
        };
        let Some(valid_for) = source.valid_for() else {
            return Ok(current);
        };
        if current.fresh_for(valid_for) {
            return Ok(current);
        }
        let mut guard = self.clients.write().await;
        // Another caller may have renewed while this one waited for the lock.
        if guard.fresh_for(valid_for) {
            return Ok(guard.clone());
        }
        *guard = Clients::from_source(source.as_ref()).await?;
        Ok(guard.clone())
    }

    /// A client for calls the [`Cluster`] port does not cover (PodDisruptionBudgets, events),
    /// renewed like the port's own: with kube's default retries of 429/503/504.
    pub async fn client(&self) -> PortResult<Client> {
        Ok(self.clients().await?.client)
    }

    /// Lists every object in pages. A continue token the server has expired (410 Gone, after
    /// etcd compaction during a slow listing) restarts the listing from the first page, a few
    /// times at most, since a partial list would make the scheduler miss pods.
    async fn list_all<K>(&self, api: &Api<K>, what: &str, fields: Option<&str>) -> PortResult<Vec<K>>
    where
        K: Clone + DeserializeOwned + std::fmt::Debug,
    {
        self.list_converted(api, what, fields, |page| page).await
    }

    /// [`Self::list_all`], each page converted by `convert` as it arrives, so that the raw
    /// objects of a large cluster (50,000 pods) are never all held at once.
    async fn list_converted<K, T>(
        &self,
        api: &Api<K>,
        what: &str,
        fields: Option<&str>,
        convert: impl Fn(Vec<K>) -> Vec<T>,
    ) -> PortResult<Vec<T>>
    where
        K: Clone + DeserializeOwned + std::fmt::Debug,
    {
        let mut restarts = 0;
        'listing: loop {
            let mut out = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let mut params = ListParams::default().limit(self.page_size);
                if let Some(fields) = fields {
                    params = params.fields(fields);
                }
                if let Some(t) = &token {
                    params = params.continue_token(t);
                }
                let page = match api.list(&params).await {
                    Ok(page) => page,
                    Err(e) if status_code(&e) == Some(410) && restarts < LIST_RESTARTS => {
                        restarts += 1;
                        tracing::info!(
                            what,
                            restarts,
                            "continue token expired; listing again from the start"
                        );
                        continue 'listing;
                    }
                    Err(e) => return Err(from_kube(what, e)),
                };
                let next = page.metadata.continue_;
                out.extend(convert(page.items));
                match next {
                    Some(next) if !next.is_empty() => token = Some(next),
                    _ => return Ok(out),
                }
            }
        }
    }

    async fn custom_resources(&self, gvk: &GroupVersionKind, plural: &str) -> PortResult<Vec<DynamicObject>> {
        let resource = ApiResource::from_gvk_with_plural(gvk, plural);
        let api: Api<DynamicObject> = Api::all_with(self.client().await?, &resource);
        self.list_all(&api, &format!("list {plural}"), None).await
    }

    /// Reads the node, changes it with `change`, and writes it back at the version read; a
    /// concurrent writer makes the write fail with 409 and the change is made again on a fresh
    /// read. `change` returns false when there is nothing to write.
    async fn update_node(
        &self,
        name: &str,
        what: &str,
        change: impl Fn(&mut K8sNode) -> bool,
    ) -> PortResult<()> {
        let api: Api<K8sNode> = Api::all(self.client().await?);
        let mut last = None;
        for _ in 0..CONFLICT_ATTEMPTS {
            let mut node = api.get(name).await.map_err(|e| from_kube(what, e))?;
            if !change(&mut node) {
                return Ok(());
            }
            match api.replace(name, &PostParams::default(), &node).await {
                Ok(_) => return Ok(()),
                Err(e) if status_code(&e) == Some(409) => last = Some(e),
                Err(e) => return Err(from_kube(what, e)),
            }
        }
        Err(match last {
            Some(e) => from_kube(what, e),
            None => PortError::new(ErrorKind::Conflict, format!("{what}: kept conflicting")),
        })
    }
}

fn nodepool_gvk() -> GroupVersionKind {
    GroupVersionKind::gvk("karpenter.sh", "v1", "NodePool")
}

fn nodeclass_gvk() -> GroupVersionKind {
    GroupVersionKind::gvk("karpenter.k8s.aws", "v1", "EC2NodeClass")
}

/// Whether the kube-scheduler gave up on the pod and it waits for capacity
/// ([`nodewright_core::pending`], the rule every reader shares).
pub fn is_pending_unschedulable(pod: &K8sPod) -> bool {
    let status = pod.status.as_ref();
    let scheduled = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled")
        .map(|c| (c.status.as_str(), c.reason.as_deref()));
    let state = PodState {
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        phase: status.and_then(|s| s.phase.as_deref()),
        scheduled,
        nominated_node: status.and_then(|s| s.nominated_node_name.as_deref()),
        deleting: pod.metadata.deletion_timestamp.is_some(),
    };
    let owners = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .map(|o| (o.kind.as_str(), Some(o.api_version.as_str())));
    waits_for_capacity(&state, owners, Seen::AfterScheduling).is_ok()
}

fn is_bound_and_running(pod: &K8sPod) -> bool {
    let bound = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    let terminal = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    bound && !terminal
}

fn name_of(pod: &K8sPod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// Converts what converts; logs and skips the rest.
fn convert_pods(pods: Vec<K8sPod>, keep: impl Fn(&K8sPod) -> bool) -> Vec<Pod> {
    pods.iter()
        .filter(|p| keep(p))
        .filter_map(|p| match nodewright_manifests::pod_from_k8s(p) {
            Ok(pod) => Some(pod),
            Err(e) => {
                tracing::warn!(pod = %name_of(p), error = %e, "skipping a pod that cannot be read");
                None
            }
        })
        .collect()
}

fn k8s_taint(t: &Taint) -> K8sTaint {
    K8sTaint {
        key: t.key.clone(),
        value: t.value.clone(),
        effect: t.effect.as_str().to_string(),
        time_added: None,
    }
}

fn same_taint(a: &K8sTaint, b: &K8sTaint) -> bool {
    a.key == b.key && a.effect == b.effect
}

/// Parses each object with the core's strict parser; one that fails goes to the second list
/// (the core's error names it), and the rest still load.
fn parse_objects<T>(
    objects: Vec<DynamicObject>,
    gvk: &GroupVersionKind,
    pick: impl Fn(ConfigObject) -> Option<T>,
) -> (Vec<T>, Vec<String>) {
    let kind = gvk.kind.as_str();
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for mut object in objects {
        let name = object.metadata.name.clone().unwrap_or_default();
        // List items of custom resources carry their type, but the parser dispatches on it,
        // so make sure it is there.
        if object.types.is_none() {
            object.types = Some(TypeMeta {
                api_version: gvk.api_version(),
                kind: gvk.kind.clone(),
            });
        }
        let parsed = match serde_json::to_value(&object) {
            Ok(value) => parse_config_object(&value).map_err(|e| e.to_string()),
            Err(e) => Err(format!("{kind} {name}: {e}")),
        };
        match parsed.map(&pick) {
            Ok(Some(t)) => good.push(t),
            Ok(None) => bad.push(format!("{kind} {name}: not a {kind}")),
            Err(e) => bad.push(e),
        }
    }
    (good, bad)
}

/// Who reports nodewright's events (`reportingController`, `reportingInstance`).
const REPORTING_CONTROLLER: &str = "nodewright.io/provisioner";
const REPORTING_INSTANCE: &str = "nodewright";

impl Cluster for KubeCluster {
    async fn list_pending_pods(&self) -> PortResult<Vec<Pod>> {
        let api: Api<K8sPod> = Api::all(self.client().await?);
        self.list_converted(
            &api,
            "list pending pods",
            Some("spec.nodeName=,status.phase=Pending"),
            |page| convert_pods(page, is_pending_unschedulable),
        )
        .await
    }

    async fn list_bound_pods(&self) -> PortResult<Vec<Pod>> {
        let api: Api<K8sPod> = Api::all(self.client().await?);
        self.list_converted(
            &api,
            "list bound pods",
            Some("spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"),
            |page| convert_pods(page, is_bound_and_running),
        )
        .await
    }

    async fn list_nodes(&self) -> PortResult<Vec<Node>> {
        let api: Api<K8sNode> = Api::all(self.client().await?);
        self.list_converted(&api, "list nodes", None, |page| {
            page.iter()
                .filter_map(|n| match nodewright_manifests::node_from_k8s(n) {
                    Ok(node) => Some(node),
                    Err(e) => {
                        let name = n.metadata.name.as_deref().unwrap_or("");
                        tracing::warn!(node = %name, error = %e, "skipping a node that cannot be read");
                        None
                    }
                })
                .collect()
        })
        .await
    }

    async fn list_daemonsets(&self) -> PortResult<Vec<DaemonSet>> {
        let api: Api<K8sDaemonSet> = Api::all(self.client().await?);
        let daemonsets = self.list_all(&api, "list daemonsets", None).await?;
        Ok(daemonsets
            .iter()
            .filter_map(|ds| {
                let namespace = ds.metadata.namespace.clone().unwrap_or_default();
                let name = ds.metadata.name.clone().unwrap_or_default();
                match nodewright_manifests::workload::daemonset_pod(ds) {
                    Ok(pod) => Some(DaemonSet { namespace, name, pod }),
                    Err(e) => {
                        tracing::warn!(daemonset = %format!("{namespace}/{name}"), error = %e, "skipping a daemonset that cannot be read");
                        None
                    }
                }
            })
            .collect())
    }

    async fn list_pdbs(&self) -> PortResult<Vec<nodewright_core::pdb::PodDisruptionBudget>> {
        let api: Api<K8sPdb> = Api::all(self.client().await?);
        let pdbs = self.list_all(&api, "list poddisruptionbudgets", None).await?;
        Ok(pdbs
            .iter()
            .filter_map(|b| match nodewright_manifests::pdb_from_k8s(b) {
                Ok(pdb) => Some(pdb),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a PodDisruptionBudget that cannot be read");
                    None
                }
            })
            .collect())
    }

    async fn list_volumes(&self) -> PortResult<nodewright_core::volumes::Volumes> {
        let client = self.client().await?;
        let mut volumes = nodewright_core::volumes::Volumes::default();
        // One object that cannot be read only leaves the pods that use it waiting.
        fn skip<T>(kind: &str, r: nodewright_manifests::Result<T>) -> Option<T> {
            r.map_err(|e| tracing::warn!(error = %e, kind, "skipping an object that cannot be read"))
                .ok()
        }
        let api: Api<K8sPvc> = Api::all(client.clone());
        for pvc in self.list_all(&api, "list persistentvolumeclaims", None).await? {
            if let Some(c) = skip(
                "PersistentVolumeClaim",
                nodewright_manifests::claim_from_k8s(&pvc),
            ) {
                volumes.add_claim(c);
            }
        }
        let api: Api<K8sPv> = Api::all(client.clone());
        for pv in self.list_all(&api, "list persistentvolumes", None).await? {
            if let Some(v) = skip("PersistentVolume", nodewright_manifests::volume_from_k8s(&pv)) {
                volumes.add_volume(v);
            }
        }
        let api: Api<K8sStorageClass> = Api::all(client);
        for sc in self.list_all(&api, "list storageclasses", None).await? {
            if let Some(c) = skip("StorageClass", nodewright_manifests::storage_class_from_k8s(&sc)) {
                volumes.add_class(c);
            }
        }
        Ok(volumes)
    }

    async fn list_namespace_labels(&self) -> PortResult<BTreeMap<String, BTreeMap<String, String>>> {
        let api: Api<K8sNamespace> = Api::all(self.client().await?);
        let namespaces = self.list_all(&api, "list namespaces", None).await?;
        Ok(namespaces
            .into_iter()
            .filter_map(|ns| Some((ns.metadata.name?, ns.metadata.labels.unwrap_or_default())))
            .collect())
    }

    async fn list_nodepools(&self) -> PortResult<(Vec<NodePool>, Vec<String>)> {
        let objects = self.custom_resources(&nodepool_gvk(), "nodepools").await?;
        Ok(parse_objects(objects, &nodepool_gvk(), |o| match o {
            ConfigObject::NodePool(p) => Some(*p),
            ConfigObject::Ec2NodeClass(_) => None,
        }))
    }

    async fn list_nodeclasses(&self) -> PortResult<(Vec<Ec2NodeClass>, Vec<String>)> {
        let objects = self.custom_resources(&nodeclass_gvk(), "ec2nodeclasses").await?;
        Ok(parse_objects(objects, &nodeclass_gvk(), |o| match o {
            ConfigObject::Ec2NodeClass(c) => Some(*c),
            ConfigObject::NodePool(_) => None,
        }))
    }

    async fn update_statuses(&self, updates: &[StatusUpdate]) -> PortResult<usize> {
        let client = self.client().await?;
        let mut written = 0;
        let mut first_error = None;
        for u in updates {
            let (gvk, plural) = match u.kind {
                ConfigKind::NodePool => (nodepool_gvk(), "nodepools"),
                ConfigKind::Ec2NodeClass => (nodeclass_gvk(), "ec2nodeclasses"),
            };
            let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            let patch = serde_json::json!({ "status": u.status });
            match api
                .patch_status(&u.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => written += 1,
                // Deleted since it was listed: nothing to report on.
                Err(e) if status_code(&e) == Some(404) => {}
                Err(e) => {
                    let err = from_kube(&format!("update status of {} {}", gvk.kind, u.name), e);
                    tracing::warn!(error = %err, "a status could not be written");
                    first_error.get_or_insert(err);
                }
            }
        }
        match first_error {
            Some(err) if written == 0 => Err(err),
            _ => Ok(written),
        }
    }

    async fn record_events(&self, events: &[KubeEvent]) -> PortResult<usize> {
        let client = self.client().await?;
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let mut recorded = 0;
        let mut first_error = None;
        for e in events {
            let api: Api<K8sEvent> = Api::namespaced(client.clone(), &e.namespace);
            let name = e.name();
            let what = format!("record event {}/{name}", e.namespace);
            let object = K8sEvent {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(e.namespace.clone()),
                    ..ObjectMeta::default()
                },
                event_time: Some(now.clone()),
                action: Some(e.action.clone()),
                reason: Some(e.reason.clone()),
                note: Some(e.note.clone()),
                type_: Some(e.event_type.as_str().to_string()),
                regarding: Some(ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some(e.regarding.kind().into()),
                    name: Some(e.name.clone()),
                    namespace: (e.regarding == Regarding::Pod).then(|| e.namespace.clone()),
                    ..ObjectReference::default()
                }),
                reporting_controller: Some(REPORTING_CONTROLLER.into()),
                reporting_instance: Some(REPORTING_INSTANCE.into()),
                ..K8sEvent::default()
            };
            let outcome = match api.create(&PostParams::default(), &object).await {
                Ok(_) => Ok(()),
                // Said before: count it in the series, as the event recorder aggregates.
                Err(err) if status_code(&err) == Some(409) => match api.get(&name).await {
                    Ok(mut existing) => {
                        let count = existing.series.as_ref().map_or(1, |s| s.count) + 1;
                        existing.series = Some(EventSeries {
                            count,
                            last_observed_time: now.clone(),
                        });
                        api.replace(&name, &PostParams::default(), &existing)
                            .await
                            .map(|_| ())
                            .map_err(|err| from_kube(&what, err))
                    }
                    Err(err) => Err(from_kube(&what, err)),
                },
                Err(err) => Err(from_kube(&what, err)),
            };
            match outcome {
                Ok(()) => recorded += 1,
                Err(err) => {
                    tracing::warn!(error = %err, "an event could not be recorded");
                    first_error.get_or_insert(err);
                }
            }
        }
        match first_error {
            Some(err) if recorded == 0 => Err(err),
            _ => Ok(recorded),
        }
    }

    async fn cordon(&self, node: &str, taint: &Taint) -> PortResult<()> {
        let wanted = k8s_taint(taint);
        self.update_node(node, &format!("cordon node {node}"), |n| {
            let spec = n.spec.get_or_insert_with(Default::default);
            let taints = spec.taints.get_or_insert_with(Vec::new);
            let has_taint = taints.iter().any(|t| same_taint(t, &wanted));
            let cordoned = spec.unschedulable == Some(true);
            if has_taint && cordoned {
                return false;
            }
            if !has_taint {
                taints.push(wanted.clone());
            }
            spec.unschedulable = Some(true);
            true
        })
        .await
    }

    async fn evict(&self, namespace: &str, name: &str) -> PortResult<Eviction> {
        let client = self.clients().await?.evictions;
        let api: Api<K8sPod> = Api::namespaced(client, namespace);
        match api.evict(name, &EvictParams::default()).await {
            Ok(_) => Ok(Eviction::Evicted),
            Err(e) => match status_code(&e) {
                Some(429) => Ok(Eviction::Blocked),
                Some(404) => Ok(Eviction::Gone),
                _ => Err(from_kube(&format!("evict pod {namespace}/{name}"), e)),
            },
        }
    }

    async fn delete_node(&self, node: &str) -> PortResult<()> {
        let finalizer = labels::TERMINATION_FINALIZER;
        let released = self
            .update_node(node, &format!("release node {node}"), |n| {
                let Some(list) = n.metadata.finalizers.as_mut() else {
                    return false;
                };
                let before = list.len();
                list.retain(|f| f != finalizer);
                list.len() != before
            })
            .await;
        match released {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        let api: Api<K8sNode> = Api::all(self.client().await?);
        match api.delete(node, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(from_kube(&format!("delete node {node}"), e)),
        }
    }

    async fn patch_node(&self, node: &str, patch: &NodePatch) -> PortResult<()> {
        let wanted: Vec<K8sTaint> = patch.taints.iter().map(k8s_taint).collect();
        let finalizer = labels::TERMINATION_FINALIZER;
        self.update_node(node, &format!("patch node {node}"), |n| {
            let mut changed = false;
            let current = n.metadata.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in &patch.labels {
                if current.get(k) != Some(v) {
                    current.insert(k.clone(), v.clone());
                    changed = true;
                }
            }
            if patch.finalizer {
                let list = n.metadata.finalizers.get_or_insert_with(Vec::new);
                // A Node already being deleted takes no new finalizer (the API refuses it).
                if n.metadata.deletion_timestamp.is_none() && !list.iter().any(|f| f == finalizer) {
                    list.push(finalizer.to_string());
                    changed = true;
                }
            }
            let spec = n.spec.get_or_insert_with(Default::default);
            let taints = spec.taints.get_or_insert_with(Vec::new);
            for w in &wanted {
                if !taints.iter().any(|h| same_taint(h, w)) {
                    taints.push(w.clone());
                    changed = true;
                }
            }
            if taints.is_empty() {
                spec.taints = None;
            }
            changed
        })
        .await
    }
}

/// Taint effects as the API spells them.
trait EffectName {
    fn as_str(&self) -> &'static str;
}

impl EffectName for TaintEffect {
    fn as_str(&self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}
