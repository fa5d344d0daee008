//! NodeClaims with defaults: pool and class `default`, on demand, one `m5.large` in
//! `us-east-1a`.

use crate::builders::launched_claim;
use crate::catalog::CapacityType;
use crate::nodeclaim::{ClaimState, LaunchedInstance, NodeClaim};
use crate::pod::{Millis, Taint};

/// A claim of pool `default` in state `Launching`, created at 0: what the provisioner writes
/// before CreateFleet. It is [`launched_claim`] with the launch not yet happened, so that one
/// claim literal serves every test.
pub fn claim(id: &str) -> ClaimBuilder {
    let mut claim = launched_claim(id, 0);
    claim.state = ClaimState::Launching;
    claim.instance = None;
    claim.launched_at = None;
    ClaimBuilder { claim }
}

#[derive(Debug, Clone)]
pub struct ClaimBuilder {
    claim: NodeClaim,
}

/// Carries on from a claim as it is, one a store handed back, say.
impl From<NodeClaim> for ClaimBuilder {
    fn from(claim: NodeClaim) -> Self {
        ClaimBuilder { claim }
    }
}

impl ClaimBuilder {
    /// Pool `pool`, with the pool label the plan gives its claims.
    pub fn nodepool(mut self, pool: &str) -> Self {
        self.claim.nodepool = pool.into();
        self.claim
            .labels
            .insert(crate::labels::NODEPOOL.into(), pool.into());
        self
    }

    pub fn state(mut self, state: ClaimState) -> Self {
        self.claim.state = state;
        self
    }

    pub fn version(mut self, version: u64) -> Self {
        self.claim.version = version;
        self
    }

    pub fn created_at(mut self, at: Millis) -> Self {
        self.claim.created_at = at;
        self
    }

    /// The instance types the launch may use, cheapest first.
    pub fn instance_types<S: AsRef<str>>(mut self, types: &[S]) -> Self {
        self.claim.instance_types = types.iter().map(|t| t.as_ref().to_string()).collect();
        self
    }

    pub fn zones<S: AsRef<str>>(mut self, zones: &[S]) -> Self {
        self.claim.zones = zones.iter().map(|z| z.as_ref().to_string()).collect();
        self
    }

    /// No zone of its own: the launch may use its offerings in any zone.
    pub fn any_zone(mut self) -> Self {
        self.claim.zones.clear();
        self
    }

    pub fn capacity_types(mut self, capacity_types: &[CapacityType]) -> Self {
        self.claim.capacity_types = capacity_types.to_vec();
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.claim.labels.insert(key.into(), value.into());
        self
    }

    /// No labels at all, not even the pool's.
    pub fn without_labels(mut self) -> Self {
        self.claim.labels.clear();
        self
    }

    pub fn taint(mut self, taint: Taint) -> Self {
        self.claim.taints.push(taint);
        self
    }

    /// The pending pods (`namespace/name`) the plan put on it.
    pub fn pods<S: AsRef<str>>(mut self, pods: &[S]) -> Self {
        self.claim.pods = pods.iter().map(|p| p.as_ref().to_string()).collect();
        self
    }

    /// Launched at `at` onto `instance_id`, as its first instance type, zone and capacity type,
    /// at 0.096 $/h (an on-demand m5.large).
    pub fn launched(mut self, instance_id: &str, at: Millis) -> Self {
        let first =
            |list: &[String], fallback: &str| list.first().cloned().unwrap_or_else(|| fallback.into());
        self.claim.state = ClaimState::Launched;
        self.claim.launched_at = Some(at);
        self.claim.instance = Some(LaunchedInstance {
            instance_id: instance_id.into(),
            instance_type: first(&self.claim.instance_types, "m5.large"),
            zone: first(&self.claim.zones, "us-east-1a"),
            capacity_type: self
                .claim
                .capacity_types
                .first()
                .copied()
                .unwrap_or(CapacityType::OnDemand),
            price: 0.096,
        });
        self
    }

    /// The hourly price of the launched instance (after [`Self::launched`]).
    pub fn price(mut self, price: f64) -> Self {
        if let Some(instance) = &mut self.claim.instance {
            instance.price = price;
        }
        self
    }

    pub fn build(self) -> NodeClaim {
        self.claim
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_launched_by_the_builder_is_the_launched_claim_of_the_builders() {
        let built = claim("default-a")
            .created_at(5)
            .launched("i-default-a", 5)
            .build();
        assert_eq!(built, launched_claim("default-a", 5));
    }

    #[test]
    fn the_launched_instance_is_the_claims_first_offering() {
        let built = claim("gpu-1")
            .nodepool("gpu")
            .instance_types(&["g5.xlarge", "g5.2xlarge"])
            .zones(&["us-east-1b"])
            .capacity_types(&[CapacityType::Spot])
            .launched("i-1", 10)
            .price(0.4)
            .build();
        let instance = built.instance.as_ref().map(|i| {
            (
                i.instance_type.as_str(),
                i.zone.as_str(),
                i.capacity_type,
                i.price,
            )
        });
        assert_eq!(
            instance,
            Some(("g5.xlarge", "us-east-1b", CapacityType::Spot, 0.4))
        );
        assert_eq!(built.labels[crate::labels::NODEPOOL], "gpu");
    }
}
