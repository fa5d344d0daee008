//! REST paths and methods to store operations, answered as the real API server answers them:
//! unknown paths 404, wrong methods 405, watch refused with 405.

use http::Method;
use serde_json::Value;

use crate::discovery;
use crate::error::{Error, Result};
use crate::patch::PatchType;
use crate::pods;
use crate::registry::ResourceType;
use crate::selectors::{FieldSelector, parse_label_query};
use crate::store::{ListQuery, Origin, Part, State, apply_unsupported};

/// The API verb of a request, as audit logs and RBAC name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

/// One HTTP request, already read.
pub(crate) struct Call<'a> {
    pub method: &'a Method,
    pub query: &'a [(String, String)],
    pub content_type: &'a str,
    pub body: &'a [u8],
}

impl Call<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json_body(&self) -> Result<Value> {
        serde_json::from_slice(self.body)
            .map_err(|e| Error::BadRequest(format!("couldn't get version/kind; json parse error: {e}")))
    }
}

pub(crate) enum Route {
    /// A fixed document (discovery, version, health), served on GET only.
    Static(Value),
    Resource(ResourceRoute),
}

pub(crate) struct ResourceRoute {
    rt: ResourceType,
    /// `None` for cluster-scoped resources and for lists across all namespaces.
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

pub(crate) fn route(state: &State, path: &str, address: &str) -> Result<Route> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let registry = &state.registry;
    match segments.as_slice() {
        ["version"] => Ok(Route::Static(discovery::version(state.minor_version))),
        ["healthz" | "livez" | "readyz"] => Ok(Route::Static(Value::String("ok".into()))),
        ["api"] => Ok(Route::Static(discovery::core_versions(address))),
        ["apis"] => Ok(Route::Static(discovery::group_list(registry))),
        ["apis", group] => discovery::api_group(registry, group)
            .map(Route::Static)
            .ok_or(Error::PathNotFound),
        ["api", version, rest @ ..] => route_resource(state, "", version, rest),
        ["apis", group, version, rest @ ..] => route_resource(state, group, version, rest),
        _ => Err(Error::PathNotFound),
    }
}

fn route_resource(state: &State, group: &str, version: &str, rest: &[&str]) -> Result<Route> {
    let registry = &state.registry;
    let served = registry
        .group_versions()
        .iter()
        .any(|(g, v)| g == group && v == version);
    if !served {
        return Err(Error::PathNotFound);
    }
    if rest.is_empty() {
        return Ok(Route::Static(discovery::resource_list(registry, group, version)));
    }
    // `/api/v1/namespaces/{name}/status` is the namespace's own subresource, not a resource.
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if !(group.is_empty() && tail.is_empty() && matches!(*plural, "status" | "finalize")) =>
        {
            (Some(ns.to_string()), &rest[2..])
        }
        _ => (None, rest),
    };
    let [plural, tail @ ..] = rest else {
        return Err(Error::PathNotFound);
    };
    let rt = registry
        .find(group, version, plural)
        .ok_or(Error::PathNotFound)?
        .clone();
    let (name, sub) = match tail {
        [] => (None, None),
        [name] => (Some(name.to_string()), None),
        [name, sub] => (Some(name.to_string()), Some(sub.to_string())),
        _ => return Err(Error::PathNotFound),
    };
    let misplaced = if rt.namespaced {
        namespace.is_none() && name.is_some()
    } else {
        namespace.is_some()
    };
    let unknown_sub = sub.as_deref().is_some_and(|s| !rt.subresources().contains(&s));
    if misplaced || unknown_sub {
        return Err(Error::PathNotFound);
    }
    Ok(Route::Resource(ResourceRoute {
        rt,
        namespace,
        name,
        sub,
    }))
}

fn is_watch(call: &Call) -> bool {
    matches!(call.param("watch"), Some("true" | "1"))
}

/// The verb a request performs, when it is one the route serves.
pub(crate) fn verb(route: &Route, call: &Call) -> Option<Verb> {
    let Route::Resource(r) = route else {
        return (*call.method == Method::GET).then_some(Verb::Get);
    };
    let method = call.method;
    let verb = match (r.name.is_some(), r.sub.as_deref()) {
        (false, _) if *method == Method::GET && is_watch(call) => Verb::Watch,
        (false, _) if *method == Method::GET => Verb::List,
        (false, _) if *method == Method::POST => Verb::Create,
        (false, _) if *method == Method::DELETE => Verb::DeleteCollection,
        (true, None | Some("status")) if *method == Method::GET => Verb::Get,
        (true, None | Some("status")) if *method == Method::PUT => Verb::Update,
        (true, None | Some("status")) if *method == Method::PATCH => Verb::Patch,
        (true, None) if *method == Method::DELETE => Verb::Delete,
        (true, Some("eviction" | "binding")) if *method == Method::POST => Verb::Create,
        _ => return None,
    };
    Some(verb)
}

/// Runs a request against the state; returns the HTTP code and body.
pub(crate) fn execute(state: &mut State, route: &Route, call: &Call) -> Result<(u16, Value)> {
    let Some(verb) = verb(route, call) else {
        return Err(not_allowed());
    };
    let r = match route {
        Route::Static(body) => return Ok((200, body.clone())),
        Route::Resource(r) => r,
    };
    let mutating = !matches!(verb, Verb::Get | Verb::List | Verb::Watch);
    match call.param("dryRun") {
        None => run(state, r, verb, call),
        Some("All") if mutating => run(&mut state.clone(), r, verb, call),
        Some(other) => Err(Error::BadRequest(format!("Invalid dry run value: {other:?}"))),
    }
}

fn not_allowed() -> Error {
    Error::MethodNotAllowed("the server does not allow this method on the requested resource".into())
}

fn run(state: &mut State, r: &ResourceRoute, verb: Verb, call: &Call) -> Result<(u16, Value)> {
    let rt = &r.rt;
    let namespace = r.namespace.as_deref().unwrap_or_default();
    let name = r.name.as_deref().unwrap_or_default();
    let part = if r.sub.as_deref() == Some("status") {
        Part::Status
    } else {
        Part::Main
    };
    // Collections of namespaced resources are written only inside a namespace.
    let all_namespaces = rt.namespaced && r.namespace.is_none();
    match verb {
        Verb::Watch => Err(Error::MethodNotAllowed(
            "watch is not supported by the fake API server; list instead".into(),
        )),
        Verb::List => Ok((200, state.list(rt, r.namespace.as_deref(), &list_query(call)?)?)),
        Verb::DeleteCollection if !all_namespaces => {
            let query = list_query(call)?;
            Ok((200, state.delete_collection(rt, r.namespace.as_deref(), &query)?))
        }
        Verb::Get => Ok((200, state.get(rt, namespace, name)?)),
        Verb::Create if r.sub.as_deref() == Some("eviction") => {
            Ok((201, pods::evict(state, namespace, name, &call.json_body()?)?))
        }
        Verb::Create if r.sub.as_deref() == Some("binding") => {
            Ok((201, pods::bind(state, namespace, name, &call.json_body()?)?))
        }
        Verb::Create if !all_namespaces => {
            Ok((201, state.create(rt, namespace, call.json_body()?, Origin::Api)?))
        }
        Verb::Update => Ok((200, state.update(rt, namespace, name, call.json_body()?, part)?)),
        Verb::Patch => {
            let kind = PatchType::from_content_type(call.content_type).ok_or_else(|| {
                Error::UnsupportedMediaType(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {:?})",
                    call.content_type
                ))
            })?;
            if kind == PatchType::Apply {
                return Err(apply_unsupported());
            }
            Ok((200, state.patch(rt, namespace, name, kind, call.body, part)?))
        }
        Verb::Delete => {
            let options = if call.body.iter().all(u8::is_ascii_whitespace) {
                Value::Null
            } else {
                call.json_body()?
            };
            let (object, gone) = state.delete(rt, namespace, name, &options)?;
            Ok((if gone { 200 } else { 202 }, object))
        }
        Verb::Create | Verb::DeleteCollection => Err(not_allowed()),
    }
}

fn list_query(call: &Call) -> Result<ListQuery> {
    let limit = match call.param("limit") {
        None | Some("") => None,
        Some(text) => Some(text.parse::<usize>().map_err(|_| {
            Error::BadRequest(format!("invalid limit {text:?}: must be a non-negative integer"))
        })?),
    };
    Ok(ListQuery {
        labels: parse_label_query(call.param("labelSelector").unwrap_or_default())?,
        fields: FieldSelector::parse(call.param("fieldSelector").unwrap_or_default())?,
        limit,
        continue_token: call
            .param("continue")
            .filter(|t| !t.is_empty())
            .map(str::to_string),
    })
}
