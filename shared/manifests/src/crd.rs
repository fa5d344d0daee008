//! The CustomResourceDefinitions of `karpenter.sh/v1 NodePool` and `karpenter.k8s.aws/v1
//! EC2NodeClass`, generated from the core's types (`nodewright_core::api`) so that the schema the
//! API server enforces is the one nodewright parses.
//!
//! A cluster without Karpenter cannot hold these objects at all, so nodewright ships the CRDs
//! (`infra/crds/`, written by `cargo run -p nodewright-manifests --features schema --bin
//! nodewright-crds`). A cluster that already has Karpenter's CRDs must keep them: applying
//! these over them would replace Karpenter's schema.
//!
//! The schemas are made structural as `apiextensions.k8s.io/v1` requires: subschemas inlined,
//! every node typed (`x-kubernetes-int-or-string` for quantities,
//! `x-kubernetes-preserve-unknown-fields` only where the type is free-form JSON), no
//! `additionalProperties` beside `properties`, and nothing the API server does not know
//! (`nullable` for `Option`s is left out: the API server prunes nulls of such fields, which
//! serde then reads as absent; serde's defaults are left to the parser, so stored objects stay
//! as they were written).

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use nodewright_core::api::{Ec2NodeClass, NodePool};

/// The command that writes the CRDs, for messages.
pub const REGENERATE: &str = "cargo run -p nodewright-manifests --features schema --bin nodewright-crds";

/// `format`s the API server knows; schemars' others (`uint32`, `uint`, …) are dropped (their
/// `minimum` stays).
const KNOWN_FORMATS: &[&str] = &[
    "int32",
    "int64",
    "float",
    "double",
    "byte",
    "date",
    "date-time",
    "password",
];

/// One CRD: its file name under `infra/crds/` and the object.
#[derive(Debug, Clone)]
pub struct Crd {
    pub file_name: &'static str,
    pub object: Value,
}

impl Crd {
    /// The file's text: a header naming the generator, then the object as YAML with its keys
    /// sorted (so the text does not depend on serde_json's map order).
    pub fn to_yaml(&self) -> String {
        let body = crate::yaml::to_string(&Sorted(&self.object)).expect("a JSON value serializes as YAML");
        format!(
            "# Generated from nodewright-core's types (shared/core/src/api.rs) by\n\
             #   {REGENERATE}\n\
             # Do not edit. Apply on a cluster without Karpenter; where Karpenter's CRDs are installed,\n\
             # skip this file (it would replace their schema).\n---\n{body}"
        )
    }

    /// The version's `openAPIV3Schema`.
    pub fn schema(&self) -> &Value {
        &self.object["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    }
}

/// The two CRDs, NodePool first.
pub fn crds() -> Vec<Crd> {
    vec![nodepool_crd(), ec2nodeclass_crd()]
}

pub fn nodepool_crd() -> Crd {
    Crd {
        file_name: "karpenter.sh_nodepools.yaml",
        object: crd(
            CrdNames {
                group: "karpenter.sh",
                kind: "NodePool",
                plural: "nodepools",
                singular: "nodepool",
                short_names: &[],
            },
            json!([
                {"name": "NodeClass", "type": "string", "jsonPath": ".spec.template.spec.nodeClassRef.name"},
                {"name": "Nodes", "type": "string", "jsonPath": ".status.nodes"},
                {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                {"name": "Weight", "type": "integer", "priority": 1, "jsonPath": ".spec.weight"},
                {"name": "CPU", "type": "string", "priority": 1, "jsonPath": ".status.resources.cpu"},
                {"name": "Memory", "type": "string", "priority": 1, "jsonPath": ".status.resources.memory"},
            ]),
            object_schema::<NodePool>(),
        ),
    }
}

pub fn ec2nodeclass_crd() -> Crd {
    Crd {
        file_name: "karpenter.k8s.aws_ec2nodeclasses.yaml",
        object: crd(
            CrdNames {
                group: "karpenter.k8s.aws",
                kind: "EC2NodeClass",
                plural: "ec2nodeclasses",
                singular: "ec2nodeclass",
                short_names: &["ec2nc", "ec2ncs"],
            },
            json!([
                {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                {"name": "Role", "type": "string", "priority": 1, "jsonPath": ".spec.role"},
            ]),
            object_schema::<Ec2NodeClass>(),
        ),
    }
}

struct CrdNames {
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
}

fn crd(names: CrdNames, printer_columns: Value, schema: Value) -> Value {
    let mut crd_names = json!({
        "kind": names.kind,
        "listKind": format!("{}List", names.kind),
        "plural": names.plural,
        "singular": names.singular,
        "categories": ["karpenter"],
    });
    if !names.short_names.is_empty() {
        crd_names["shortNames"] = json!(names.short_names);
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{}.{}", names.plural, names.group),
            "labels": {"app.kubernetes.io/part-of": "nodewright"},
        },
        "spec": {
            "group": names.group,
            "names": crd_names,
            "scope": "Cluster",
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "additionalPrinterColumns": printer_columns,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": schema},
            }],
        },
    })
}

/// The structural schema of a top-level object type: its own, with `metadata` left to the API
/// server (a CRD may only say `type: object` there) and `status` free-form.
fn object_schema<T: JsonSchema>() -> Value {
    let mut schema = structural(&raw_schema::<T>(), "").unwrap_or_else(|e| panic!("{e}"));
    let props = schema
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .expect("an object type has properties");
    props.insert("metadata".into(), json!({"type": "object"}));
    props.insert(
        "status".into(),
        json!({
            "description": "Written by nodewright.",
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
        }),
    );
    schema
}

/// schemars' schema of `T` as OpenAPI 3, every subschema inlined.
fn raw_schema<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    generator.into_root_schema_for::<T>().to_value()
}

/// Turns a schemars schema into a structural one, or says at which path it cannot.
pub fn structural(schema: &Value, path: &str) -> Result<Value, String> {
    let here = if path.is_empty() { "<root>" } else { path };
    let obj = match schema {
        Value::Bool(true) => return Ok(json!({"x-kubernetes-preserve-unknown-fields": true})),
        Value::Object(obj) => obj,
        other => return Err(format!("{here}: unsupported schema {other}")),
    };
    let mut out = Map::new();
    for (key, value) in obj {
        match key.as_str() {
            // Documentation and what the API server should not act on.
            "$schema" | "title" | "default" | "nullable" | "examples" | "example" | "readOnly"
            | "writeOnly" | "deprecated" => {}
            "$ref" | "$defs" | "definitions" | "components" | "oneOf" | "allOf" | "not" => {
                return Err(format!("{here}: {key} has no structural equivalent here"));
            }
            "type" => {
                let types: Vec<&str> = match value {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts
                        .iter()
                        .filter_map(Value::as_str)
                        .filter(|t| *t != "null")
                        .collect(),
                    other => return Err(format!("{here}: type {other}")),
                };
                match types.as_slice() {
                    [t] => {
                        out.insert("type".into(), json!(t));
                    }
                    _ => return Err(format!("{here}: several types {value}")),
                }
            }
            "format" => {
                if value.as_str().is_some_and(|f| KNOWN_FORMATS.contains(&f)) {
                    out.insert(key.clone(), value.clone());
                }
            }
            "properties" => {
                let mut props = Map::new();
                for (name, sub) in value.as_object().ok_or(format!("{here}: properties"))? {
                    props.insert(name.clone(), structural(sub, &format!("{path}.{name}"))?);
                }
                out.insert(key.clone(), Value::Object(props));
            }
            "items" => {
                out.insert(key.clone(), structural(value, &format!("{path}[]"))?);
            }
            "additionalProperties" => match value {
                Value::Bool(false) => {} // deny_unknown_fields: the API server prunes instead.
                Value::Bool(true) => {
                    out.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
                }
                Value::Object(sub) if sub.is_empty() => {
                    out.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
                }
                sub => {
                    out.insert(key.clone(), structural(sub, &format!("{path}.*"))?);
                }
            },
            "anyOf" => {
                // Only the int-or-string shape (`anyOf` of bare types) is structural.
                let bare = value.as_array().is_some_and(|branches| {
                    branches.iter().all(|b| {
                        b.as_object()
                            .is_some_and(|b| b.len() == 1 && b.contains_key("type"))
                    })
                });
                if !bare || obj.get("x-kubernetes-int-or-string") != Some(&json!(true)) {
                    return Err(format!("{here}: anyOf other than int-or-string"));
                }
                out.insert(key.clone(), value.clone());
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    if out.contains_key("properties") && !out.contains_key("type") {
        out.insert("type".into(), json!("object"));
    }
    if out.contains_key("properties") && out.contains_key("additionalProperties") {
        return Err(format!("{here}: properties and additionalProperties together"));
    }
    let int_or_string = out.get("x-kubernetes-int-or-string") == Some(&json!(true));
    let preserve = out.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    if int_or_string {
        out.remove("type");
    } else if !out.contains_key("type") && !preserve {
        return Err(format!("{here}: no type"));
    }
    Ok(Value::Object(out))
}

/// A JSON value that serializes every map with its keys in order, whatever order serde_json
/// keeps them in (insertion order where a crate turns on `preserve_order`).
struct Sorted<'a>(&'a Value);

impl serde::Serialize for Sorted<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = serializer.serialize_map(Some(keys.len()))?;
                for k in keys {
                    out.serialize_entry(k, &Sorted(&map[k]))?;
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(&Sorted(item))?;
                }
                out.end()
            }
            scalar => scalar.serialize(serializer),
        }
    }
}

/// Checks `value` against a structural schema as the API server's validation does for the
/// checks a schema here carries: types, required properties, unknown properties (which the API
/// server would prune, with a warning), enums, integer bounds. Patterns and CEL rules are not
/// checked. Nulls are skipped where the API server prunes them. Returns every violation.
pub fn validate(value: &Value, schema: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(value, schema, "", &mut errors);
    errors
}

fn check(value: &Value, schema: &Value, path: &str, errors: &mut Vec<String>) {
    let here = if path.is_empty() { "<root>" } else { path };
    let flag = |name: &str| schema.get(name) == Some(&json!(true));
    if flag("x-kubernetes-int-or-string") {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            errors.push(format!("{here}: expected an integer or a string, got {value}"));
        }
        return;
    }
    let Some(ty) = schema.get("type").and_then(Value::as_str) else {
        if !flag("x-kubernetes-preserve-unknown-fields") {
            errors.push(format!("{here}: the schema has no type"));
        }
        return;
    };
    let ok = match ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => false,
    };
    if !ok {
        errors.push(format!("{here}: expected {ty}, got {value}"));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!(
            "{here}: {value} is not one of {}",
            Value::Array(allowed.clone())
        ));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            errors.push(format!("{here}: {value} is below the minimum {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            errors.push(format!("{here}: {value} is above the maximum {max}"));
        }
    }
    if path == ".metadata" {
        return; // ObjectMeta: the API server's own schema, not the CRD's.
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = name.as_str().unwrap_or_default();
                if map.get(name).is_none_or(Value::is_null) {
                    errors.push(format!("{path}.{name}: required"));
                }
            }
            for (name, sub) in map {
                let sub_path = format!("{path}.{name}");
                if sub.is_null() {
                    continue; // pruned by the API server
                }
                if let Some(sub_schema) = props.and_then(|p| p.get(name)) {
                    check(sub, sub_schema, &sub_path, errors);
                } else if let Some(sub_schema) = schema.get("additionalProperties") {
                    check(sub, sub_schema, &sub_path, errors);
                } else if !flag("x-kubernetes-preserve-unknown-fields") {
                    errors.push(format!("{sub_path}: unknown field"));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item, item_schema, &format!("{path}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}
