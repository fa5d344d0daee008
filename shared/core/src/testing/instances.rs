//! Instances as the cloud reports them, with defaults: a running on-demand `m5.large` in
//! `us-east-1a`, launched at 0, of no claim.

use std::collections::BTreeMap;

use crate::catalog::CapacityType;
use crate::pod::Millis;
use crate::ports::{Instance, InstanceState};

pub fn instance(id: &str) -> InstanceBuilder {
    InstanceBuilder {
        instance: Instance {
            id: id.into(),
            instance_type: "m5.large".into(),
            zone: "us-east-1a".into(),
            capacity_type: CapacityType::OnDemand,
            state: InstanceState::Running,
            launched_at: 0,
            tags: BTreeMap::new(),
            claim_id: None,
            private_dns_name: None,
            image_id: None,
            instance_profile: None,
        },
    }
}

#[derive(Debug, Clone)]
pub struct InstanceBuilder {
    instance: Instance,
}

impl InstanceBuilder {
    /// Tagged as the instance of claim `id`.
    pub fn claim(mut self, id: &str) -> Self {
        self.instance.claim_id = Some(id.into());
        self
    }

    pub fn launched_at(mut self, at: Millis) -> Self {
        self.instance.launched_at = at;
        self
    }

    /// The state by its EC2 name (`running`, `terminated`, …).
    pub fn state(mut self, ec2_state: &str) -> Self {
        self.instance.state = InstanceState::from_ec2(ec2_state);
        self
    }

    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.instance.tags.insert(key.into(), value.into());
        self
    }

    pub fn instance_profile(mut self, name: &str) -> Self {
        self.instance.instance_profile = Some(name.into());
        self
    }

    pub fn build(self) -> Instance {
        self.instance
    }
}
