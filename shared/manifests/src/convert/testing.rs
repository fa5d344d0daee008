//! Helpers the conversion tests share.

use nodewright_core::api;
use serde_json::Value;

use super::fields::describe;
use super::{Conversion, convert_documents};

pub(super) fn convert_yaml(yaml: &str) -> Conversion {
    convert_documents(&crate::yaml::all_documents(yaml).expect("fixture is YAML"))
}

pub(super) fn find<'a>(c: &'a Conversion, kind: &str, name: &str) -> &'a Value {
    c.documents
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {:#?}", c.documents))
}

pub(super) fn warnings(c: &Conversion) -> Vec<String> {
    c.warnings.iter().map(ToString::to_string).collect()
}

/// Every converted document parses with the core's strict parser.
pub(super) fn assert_accepted(c: &Conversion) {
    for doc in &c.documents {
        if let Err(e) = api::parse_config_object(doc) {
            panic!("{} refused: {e}\n{doc:#}", describe("", doc));
        }
    }
    assert!(
        !warnings(c)
            .iter()
            .any(|w| w.contains("not accepted by nodewright")),
        "{:#?}",
        c.warnings
    );
}
