//! Lists: the objects of a resource in the API server's order, selected by labels and fields,
//! paged with the real server's continue tokens.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use nodewright_core::requirements::Requirements;
use serde_json::{Map, Value, json};

use super::{Key, State};
use crate::error::{Error, Result};
use crate::object::{labels_of, name_of, namespace_of};
use crate::registry::ResourceType;
use crate::selectors::{FieldSelector, label_map};

/// What a list asks for.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListQuery {
    pub labels: Requirements,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

impl State {
    /// Stored objects of a resource, in the API server's order (namespace, then name).
    pub fn objects<'a>(
        &'a self,
        rt: &ResourceType,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        let start = Key {
            resource: rt.key(),
            namespace: namespace.unwrap_or_default().to_string(),
            name: String::new(),
        };
        let resource = start.resource.clone();
        self.objects
            .range(start..)
            .take_while(move |(k, _)| k.resource == resource && namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, v)| v)
    }

    pub fn list(&self, rt: &ResourceType, namespace: Option<&str>, query: &ListQuery) -> Result<Value> {
        query.fields.check_supported(rt)?;
        let (revision, after) = match &query.continue_token {
            Some(token) => decode_continue(token)?,
            None => (self.revision, None),
        };
        let mut matching: Vec<&Value> = self
            .objects(rt, namespace)
            .filter(|o| {
                after
                    .as_ref()
                    .is_none_or(|(ns, name)| (namespace_of(o), name_of(o)) > (ns.as_str(), name.as_str()))
            })
            .filter(|o| query.labels.matches_labels(&label_map(labels_of(o))) && query.fields.matches(o))
            .collect();
        let mut metadata = Map::new();
        metadata.insert("resourceVersion".into(), json!(revision.to_string()));
        if let Some(limit) = query.limit.filter(|l| *l > 0 && matching.len() > *l) {
            let remaining = matching.len() - limit;
            matching.truncate(limit);
            if let Some(last) = matching.last() {
                metadata.insert(
                    "continue".into(),
                    json!(encode_continue(revision, namespace_of(last), name_of(last))),
                );
            }
            // The real server can only count what is left when no selector filters it.
            if query.labels.is_empty() && query.fields.is_empty() {
                metadata.insert("remainingItemCount".into(), json!(remaining));
            }
        }
        let items: Vec<Value> = matching
            .into_iter()
            .map(|o| {
                let mut item = o.clone();
                // Built-in list items come without apiVersion/kind; custom ones keep them.
                if !rt.custom
                    && let Some(map) = item.as_object_mut()
                {
                    map.remove("apiVersion");
                    map.remove("kind");
                }
                item
            })
            .collect();
        Ok(json!({
            "kind": format!("{}List", rt.kind),
            "apiVersion": rt.api_version(),
            "metadata": metadata,
            "items": items,
        }))
    }
}

/// The real server's token shape: base64 of `{"v","rv","start"}`, where start is the key after
/// which the next page begins.
fn encode_continue(revision: u64, namespace: &str, name: &str) -> String {
    let start = if namespace.is_empty() {
        format!("{name}\u{0}")
    } else {
        format!("{namespace}/{name}\u{0}")
    };
    let token = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": start});
    BASE64.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, Option<(String, String)>)> {
    let invalid = |detail: &str| Error::BadRequest(format!("continue key is not valid: {detail}"));
    let bytes = BASE64.decode(token).map_err(|_| invalid("not base64"))?;
    let token: Value = serde_json::from_slice(&bytes).map_err(|_| invalid("not JSON"))?;
    if token["v"] != "meta.k8s.io/v1" {
        return Err(invalid("unknown version"));
    }
    let revision = token["rv"]
        .as_u64()
        .ok_or_else(|| invalid("no resource version"))?;
    let start = token["start"].as_str().ok_or_else(|| invalid("no start key"))?;
    let start = start.trim_end_matches('\u{0}');
    let (namespace, name) = start.rsplit_once('/').unwrap_or(("", start));
    Ok((revision, Some((namespace.to_string(), name.to_string()))))
}
