//! What a write's body must be before it is stored: its type checked and decoded, its name
//! generated, its uid, its namespace (made for a test's insert).

use serde_json::{Value, json};

use super::{Origin, State};
use crate::admission;
use crate::error::{Cause, Error, Result};
use crate::object::{child, name_of};
use crate::registry::ResourceType;

impl State {
    /// Checks the body's type and decodes built-in types through k8s-openapi.
    pub(super) fn decode(&self, rt: &ResourceType, body: Value) -> Result<Value> {
        let Value::Object(mut map) = body else {
            return Err(Error::BadRequest("the request body must be a JSON object".into()));
        };
        for (field, want) in [("apiVersion", rt.api_version()), ("kind", rt.kind.clone())] {
            match map.get(field).and_then(Value::as_str) {
                Some(have) if !have.is_empty() && have != want => {
                    let what = if field == "kind" { "kind" } else { "API version" };
                    return Err(Error::BadRequest(format!(
                        "the {what} in the data ({have}) does not match the expected {what} ({want})"
                    )));
                }
                _ => {
                    map.insert(field.into(), json!(want));
                }
            }
        }
        if !map.get("metadata").is_none_or(|m| m.is_object() || m.is_null()) {
            return Err(Error::BadRequest("metadata must be an object".into()));
        }
        let mut object = Value::Object(map);
        if let Some(normalize) = rt.normalize {
            object = normalize(object)
                .map_err(|e| Error::BadRequest(format!("error decoding {}: {e}", rt.kind)))?;
        }
        admission::check_quantities(rt, &object).map_err(Error::BadRequest)?;
        Ok(object)
    }

    pub(super) fn generate_name(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        object: &mut Value,
    ) -> Result<()> {
        let prefix = object["metadata"]["generateName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if prefix.is_empty() {
            return Err(Error::invalid(
                rt.group_kind(),
                "",
                vec![Cause::required(
                    "metadata.name",
                    "name or generateName is required",
                )],
            ));
        }
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        loop {
            let mut seed = self.next_serial();
            let suffix: String = (0..5)
                .map(|_| {
                    let c = ALPHABET[(seed % ALPHABET.len() as u64) as usize];
                    seed /= ALPHABET.len() as u64;
                    c as char
                })
                .collect();
            let name = format!("{prefix}{suffix}");
            if self.lookup(rt, namespace, &name).is_none() {
                if let Some(meta) = child(object, "metadata") {
                    meta.insert("name".into(), json!(name));
                }
                return Ok(());
            }
        }
    }

    pub(super) fn uid(&mut self) -> String {
        let a = self.next_serial();
        let b = self.next_serial();
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }

    pub(super) fn namespace_exists(&self, namespace: &str) -> bool {
        self.registry
            .find_key("namespaces")
            .is_some_and(|rt| self.lookup(rt, "", namespace).is_some())
    }

    pub(super) fn ensure_namespace(&mut self, namespace: &str) {
        if self.namespace_exists(namespace) {
            return;
        }
        if let Some(rt) = self.registry.find_key("namespaces").cloned() {
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
            // Only an invalid name can fail here, and then the create that wanted it fails too.
            let _ = self.create(&rt, "", body, Origin::Api);
        }
    }
}

pub(super) fn place_in_namespace(rt: &ResourceType, namespace: &str, object: &mut Value) -> Result<()> {
    let Some(meta) = child(object, "metadata") else {
        return Err(Error::BadRequest("metadata must be an object".into()));
    };
    if !rt.namespaced {
        meta.remove("namespace");
        return Ok(());
    }
    match meta.get("namespace").and_then(Value::as_str) {
        Some(have) if !have.is_empty() && have != namespace => Err(Error::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request".into(),
        )),
        _ => {
            meta.insert("namespace".into(), json!(namespace));
            Ok(())
        }
    }
}

pub(super) fn check_name(object: &Value, name: &str) -> Result<()> {
    let have = name_of(object);
    if have != name {
        return Err(Error::BadRequest(format!(
            "the name of the object ({have}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}
