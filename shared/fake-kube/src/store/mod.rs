//! The object store and the generic registry semantics of the API server: create, get, list,
//! update, patch and delete with resourceVersion, uid, generation, finalizers and the
//! main/status split. Lists are `list.rs`; what a body must be before it is stored,
//! `naming.rs`.

mod list;
mod naming;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use crate::admission;
use crate::error::{Cause, Error, GroupResource, Result};
use crate::object::{
    child, finalizers_of, format_time, is_deleting, name_of, namespace_of, resource_version_of,
};
use crate::patch::{self, PatchType};
use crate::registry::{Registry, ResourceType};
pub(crate) use list::ListQuery;
use naming::{check_name, place_in_namespace};

pub(crate) type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// A controller that runs after every write to a resource in a namespace, as controllers in a
/// real control plane would soon after (the disruption controller keeping budgets' status).
pub(crate) type Controller = fn(&mut State, &ResourceType, &str);

/// Which part of an object a write addresses: the object, or its `/status` subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Main,
    Status,
}

/// Who is writing: a client over HTTP, or a test through the Rust API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Api,
    Test,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    resource: String,
    namespace: String,
    name: String,
}

impl Key {
    fn new(rt: &ResourceType, namespace: &str, name: &str) -> Self {
        Key {
            resource: rt.key(),
            namespace: if rt.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct State {
    pub registry: Registry,
    /// The Kubernetes minor version `/version` reports.
    pub minor_version: u32,
    objects: BTreeMap<Key, Value>,
    revision: u64,
    serial: u64,
    clock: Clock,
    controllers: Vec<Controller>,
}

/// What `/version` says unless a test sets another.
fn discovery_default_minor() -> u32 {
    crate::discovery::DEFAULT_MINOR
}

impl State {
    /// A store with the default namespaces, running `controllers` after every write.
    pub fn new(registry: Registry, controllers: Vec<Controller>) -> Self {
        let mut state = State {
            registry,
            minor_version: discovery_default_minor(),
            objects: BTreeMap::new(),
            revision: 0,
            serial: 0,
            clock: Arc::new(SystemTime::now),
            controllers,
        };
        for namespace in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            state.ensure_namespace(namespace);
        }
        state
    }

    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    pub fn now(&self) -> String {
        format_time((self.clock)())
    }

    /// The last resourceVersion handed out.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// A fresh number for uids, generated names and pod IPs.
    pub fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        splitmix64(self.serial)
    }

    pub fn resource(&self, key: &str) -> Option<ResourceType> {
        self.registry.find_key(key).cloned()
    }

    pub fn lookup(&self, rt: &ResourceType, namespace: &str, name: &str) -> Option<&Value> {
        self.objects.get(&Key::new(rt, namespace, name))
    }

    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value> {
        self.lookup(rt, namespace, name)
            .cloned()
            .ok_or_else(|| Error::not_found(rt.group_resource(), name))
    }

    /// Creates an object. Through the API the server owns status on create and the namespace
    /// must exist; a test's `insert` may set any status and gets its namespace made.
    pub fn create(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        body: Value,
        origin: Origin,
    ) -> Result<Value> {
        let from_test = origin == Origin::Test;
        let mut object = self.decode(rt, body)?;
        place_in_namespace(rt, namespace, &mut object)?;
        if !resource_version_of(&object).is_empty() {
            return Err(Error::Internal(
                "resourceVersion should not be set on objects to be created".into(),
            ));
        }
        if name_of(&object).is_empty() {
            self.generate_name(rt, namespace, &mut object)?;
        }
        let name = name_of(&object).to_string();
        if rt.namespaced && !self.namespace_exists(namespace) {
            if !from_test {
                let namespaces = GroupResource {
                    group: String::new(),
                    resource: "namespaces".into(),
                };
                return Err(Error::not_found(namespaces, namespace));
            }
            self.ensure_namespace(namespace);
        }
        if self.lookup(rt, namespace, &name).is_some() {
            return Err(Error::AlreadyExists {
                resource: rt.group_resource(),
                name,
            });
        }
        admission::prepare_for_create(rt, &mut object, from_test);
        let causes = admission::validate(rt, &object, None);
        if !causes.is_empty() {
            return Err(Error::invalid(rt.group_kind(), &name, causes));
        }
        let uid = self.uid();
        let now = self.now();
        if let Some(meta) = child(&mut object, "metadata") {
            // A test fixture may fix its uid, age and deletion (an owner reference, an old pod,
            // a pod terminating gracefully); through the API these are the server's.
            if !from_test {
                meta.remove("deletionTimestamp");
                meta.remove("deletionGracePeriodSeconds");
            }
            let given = |meta: &Map<String, Value>, key: &str| {
                from_test && meta.get(key).is_some_and(|v| !v.is_null())
            };
            if !given(meta, "uid") {
                meta.insert("uid".into(), json!(uid));
            }
            if !given(meta, "creationTimestamp") {
                meta.insert("creationTimestamp".into(), json!(now));
            }
            if rt.tracks_generation {
                meta.insert("generation".into(), json!(1));
            } else {
                meta.remove("generation");
            }
        }
        let stored = self.commit(rt, object);
        self.after_write(rt, namespace);
        Ok(stored)
    }

    /// PUT: replaces the object (or its status), guarded by `metadata.resourceVersion`.
    pub fn update(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        body: Value,
        part: Part,
    ) -> Result<Value> {
        let mut object = self.decode(rt, body)?;
        place_in_namespace(rt, namespace, &mut object)?;
        check_name(&object, name)?;
        let old = self.get(rt, namespace, name)?;
        let version = resource_version_of(&object);
        if version.is_empty() {
            // Custom resources do not allow unconditional updates.
            if rt.custom {
                return Err(Error::invalid(
                    rt.group_kind(),
                    name,
                    vec![Cause::invalid(
                        "metadata.resourceVersion",
                        &json!("0x0"),
                        "must be specified for an update",
                    )],
                ));
            }
        } else if version != resource_version_of(&old) {
            return Err(stale(rt, name));
        }
        self.apply_update(rt, &old, object, part)
    }

    pub fn patch(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        kind: PatchType,
        body: &[u8],
        part: Part,
    ) -> Result<Value> {
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| Error::BadRequest(format!("error decoding patch: {e}")))?;
        let old = self.get(rt, namespace, name)?;
        let mut patched = old.clone();
        match kind {
            PatchType::Merge => patch::merge_patch(&mut patched, &patch),
            PatchType::Strategic if rt.custom => {
                return Err(Error::UnsupportedMediaType(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
                ));
            }
            PatchType::Strategic => {
                patch::strategic_merge(&mut patched, &patch, &|path| patch::list_strategy(rt, path))
                    .map_err(Error::BadRequest)?;
            }
            PatchType::Json => patch::json_patch(&mut patched, &patch).map_err(|e| {
                Error::Unprocessable(format!(
                    "the server rejected our request due to an error in our request ({e})"
                ))
            })?,
            PatchType::Apply => return Err(apply_unsupported()),
        }
        let version = resource_version_of(&patched);
        if !version.is_empty() && version != resource_version_of(&old) {
            return Err(stale(rt, name));
        }
        check_name(&patched, name)?;
        if rt.namespaced && namespace_of(&patched) != namespace {
            return Err(Error::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request"
                    .into(),
            ));
        }
        let object = self.decode(rt, patched)?;
        self.apply_update(rt, &old, object, part)
    }

    /// The shared tail of PUT and PATCH, after the resourceVersion check.
    fn apply_update(&mut self, rt: &ResourceType, old: &Value, new: Value, part: Part) -> Result<Value> {
        let name = name_of(old).to_string();
        let namespace = namespace_of(old).to_string();
        let mut object = match part {
            Part::Status => {
                let mut object = old.clone();
                if let Some(map) = object.as_object_mut() {
                    match new.get("status") {
                        Some(status) => map.insert("status".into(), status.clone()),
                        None => map.remove("status"),
                    };
                }
                object
            }
            Part::Main => {
                let mut object = new;
                if rt.status_subresource
                    && let Some(map) = object.as_object_mut()
                {
                    match old.get("status") {
                        Some(status) => map.insert("status".into(), status.clone()),
                        None => map.remove("status"),
                    };
                }
                object
            }
        };
        if let Some(meta) = child(&mut object, "metadata") {
            let old_meta = &old["metadata"];
            if meta.get("uid").is_none_or(Value::is_null) {
                meta.insert("uid".into(), old_meta["uid"].clone());
            }
            for field in [
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ] {
                match old_meta.get(field) {
                    Some(v) => meta.insert(field.into(), v.clone()),
                    None => meta.remove(field),
                };
            }
            meta.insert("resourceVersion".into(), old_meta["resourceVersion"].clone());
        }
        admission::apply_defaults(rt, &mut object);
        let causes = admission::validate(rt, &object, Some(old));
        if !causes.is_empty() {
            return Err(Error::invalid(rt.group_kind(), &name, causes));
        }
        if object == *old {
            // The real store skips writes that change nothing: no new resourceVersion.
            return Ok(object);
        }
        if rt.tracks_generation && spec_changed(old, &object) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            if let Some(meta) = child(&mut object, "metadata") {
                meta.insert("generation".into(), json!(generation));
            }
        }
        let stored = self.commit(rt, object);
        if is_deleting(&stored) && finalizers_of(&stored).is_empty() {
            self.objects.remove(&Key::new(rt, &namespace, &name));
        }
        self.after_write(rt, &namespace);
        Ok(stored)
    }

    /// DELETE: immediate unless finalizers hold the object, which then only gets a
    /// deletionTimestamp. Returns the object and whether it is gone.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        options: &Value,
    ) -> Result<(Value, bool)> {
        let old = self.get(rt, namespace, name)?;
        let preconditions = &options["preconditions"];
        for (field, have) in [
            ("uid", &old["metadata"]["uid"]),
            ("resourceVersion", &old["metadata"]["resourceVersion"]),
        ] {
            if let Some(want) = preconditions[field].as_str()
                && Some(want) != have.as_str()
            {
                let label = if field == "uid" { "UID" } else { "ResourceVersion" };
                return Err(Error::conflict(
                    rt.group_resource(),
                    name,
                    format!(
                        "Precondition failed: {label} in precondition: {want}, {label} in object meta: {}",
                        have.as_str().unwrap_or_default()
                    ),
                ));
            }
        }
        if !finalizers_of(&old).is_empty() {
            if is_deleting(&old) {
                return Ok((old, false));
            }
            let mut object = old;
            let now = self.now();
            if let Some(meta) = child(&mut object, "metadata") {
                meta.insert("deletionTimestamp".into(), json!(now));
                meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
            let stored = self.commit(rt, object);
            self.after_write(rt, namespace);
            return Ok((stored, false));
        }
        self.objects.remove(&Key::new(rt, namespace, name));
        if rt.is_namespaces() {
            // Stands in for the namespace controller, at once rather than while Terminating.
            self.objects.retain(|k, _| k.namespace != name);
        }
        self.after_write(rt, namespace);
        Ok((old, true))
    }

    pub fn delete_collection(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        query: &ListQuery,
    ) -> Result<Value> {
        let list = self.list(
            rt,
            namespace,
            &ListQuery {
                limit: None,
                continue_token: None,
                ..query.clone()
            },
        )?;
        let mut deleted = Vec::new();
        for item in list["items"].as_array().into_iter().flatten() {
            let (object, _) = self.delete(rt, namespace_of(item), name_of(item), &Value::Null)?;
            deleted.push(object);
        }
        let mut list = list;
        list["items"] = Value::Array(deleted);
        Ok(list)
    }

    /// The test-side upsert: any status, no resourceVersion check, no update-only rules (so a
    /// test can set up any state a real cluster could reach), namespace created on demand.
    pub fn insert(&mut self, body: Value) -> Result<Value> {
        let api_version = body["apiVersion"].as_str().unwrap_or_default();
        let kind = body["kind"].as_str().unwrap_or_default();
        let rt = self
            .registry
            .find_kind(api_version, kind)
            .cloned()
            .ok_or_else(|| Error::BadRequest(format!("no resource is served for {api_version} {kind}")))?;
        let namespace = match namespace_of(&body) {
            "" if rt.namespaced => "default".to_string(),
            namespace => namespace.to_string(),
        };
        let name = name_of(&body).to_string();
        let Some(old) = self.lookup(&rt, &namespace, &name).cloned() else {
            let mut body = body;
            if let Some(meta) = child(&mut body, "metadata") {
                meta.remove("resourceVersion");
            }
            return self.create(&rt, &namespace, body, Origin::Test);
        };
        let mut object = self.decode(&rt, body)?;
        place_in_namespace(&rt, &namespace, &mut object)?;
        admission::apply_defaults(&rt, &mut object);
        let causes = admission::validate(&rt, &object, None);
        if !causes.is_empty() {
            return Err(Error::invalid(rt.group_kind(), &name, causes));
        }
        let generation = old["metadata"]["generation"]
            .as_i64()
            .map(|g| g + i64::from(spec_changed(&old, &object)));
        if let Some(meta) = child(&mut object, "metadata") {
            meta.insert("uid".into(), old["metadata"]["uid"].clone());
            meta.insert(
                "creationTimestamp".into(),
                old["metadata"]["creationTimestamp"].clone(),
            );
            if let Some(generation) = generation {
                meta.insert("generation".into(), json!(generation));
            }
        }
        let stored = self.commit(&rt, object);
        self.after_write(&rt, &namespace);
        Ok(stored)
    }

    /// A write by a controller inside the fake (scheduler, kubelet, disruption controller): no
    /// resourceVersion check, but a new resourceVersion when anything changed.
    pub fn write(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value> {
        let old = self.get(rt, namespace, name)?;
        let mut object = old.clone();
        change(&mut object);
        if object == old {
            return Ok(old);
        }
        let stored = self.commit(rt, object);
        self.after_write(rt, namespace);
        Ok(stored)
    }

    /// Stores an object under a new resourceVersion, without hooks.
    pub(crate) fn commit(&mut self, rt: &ResourceType, mut object: Value) -> Value {
        self.revision += 1;
        let version = self.revision.to_string();
        if let Some(meta) = child(&mut object, "metadata") {
            meta.insert("resourceVersion".into(), json!(version));
        }
        let key = Key::new(rt, namespace_of(&object), name_of(&object));
        self.objects.insert(key, object.clone());
        object
    }

    /// What runs after each write: the controllers.
    fn after_write(&mut self, rt: &ResourceType, namespace: &str) {
        for i in 0..self.controllers.len() {
            let controller = self.controllers[i];
            controller(self, rt, namespace);
        }
    }
}

fn stale(rt: &ResourceType, name: &str) -> Error {
    Error::conflict(
        rt.group_resource(),
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

pub(crate) fn apply_unsupported() -> Error {
    Error::UnsupportedMediaType(
        "server-side apply (application/apply-patch+yaml) is not supported by the fake API server; use a merge, strategic merge or JSON patch".into(),
    )
}

/// Whether anything outside metadata and status changed (what bumps `generation`).
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(map) = v.as_object_mut() {
            map.remove("metadata");
            map.remove("status");
        }
        v
    };
    strip(old) != strip(new)
}

fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
