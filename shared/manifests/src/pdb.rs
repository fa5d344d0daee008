//! PodDisruptionBudgets (`policy/v1`) into the core's model.

use k8s_openapi::api::policy::v1::PodDisruptionBudget as K8sPdb;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use nodewright_core::pdb::{Budget, IntOrPercent, PodDisruptionBudget};

use crate::constraints::label_selector;
use crate::error::{At, Error, Result};

/// Converts a budget; one without exactly one of `minAvailable` and `maxUnavailable`, or with
/// a selector the core cannot read, is an error naming the field.
pub fn pdb_from_k8s(pdb: &K8sPdb) -> Result<PodDisruptionBudget> {
    let namespace = pdb.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = pdb.metadata.name.clone().unwrap_or_default();
    let object = format!("PodDisruptionBudget {namespace}/{name}");
    let at = At {
        object: &object,
        prefix: "",
    };
    let spec = pdb.spec.clone().unwrap_or_default();
    let amount = |v: &IntOrString, field: &str| -> Result<IntOrPercent> {
        match v {
            IntOrString::Int(n) => u32::try_from(*n)
                .map(IntOrPercent::Int)
                .map_err(|_| Error::invalid(&object, field, format!("{n} is negative"))),
            IntOrString::String(s) => IntOrPercent::parse(s).map_err(|e| Error::invalid(&object, field, e)),
        }
    };
    let budget = match (&spec.min_available, &spec.max_unavailable) {
        (Some(v), None) => Budget::MinAvailable(amount(v, "spec.minAvailable")?),
        (None, Some(v)) => Budget::MaxUnavailable(amount(v, "spec.maxUnavailable")?),
        _ => {
            return Err(Error::invalid(
                &object,
                "spec",
                "give exactly one of minAvailable and maxUnavailable",
            ));
        }
    };
    // policy/v1: an empty selector selects every pod of the namespace, a missing one none.
    let selector = match &spec.selector {
        Some(s) => Some(label_selector(at, "spec.selector", s)?),
        None => None,
    };
    Ok(PodDisruptionBudget {
        namespace,
        name,
        selector,
        budget,
    })
}
