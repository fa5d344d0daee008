//! Instance profile hygiene: the profiles nodewright made for node classes that name a `role`
//! go once their node class is gone (or now wants a profile of another name) and nothing uses
//! them. Profiles are named after the cluster, region and node class, so one deleted while a
//! launch still wants it is simply made again by that launch.

use std::collections::BTreeSet;

use crate::labels;
use crate::nodeclaim::NodeClaim;
use crate::pod::Millis;
use crate::ports::{Instance, InstanceProfile, InstanceState};

/// Profiles younger than this stay: a launch for a node class created after the sweep listed
/// node classes may be about to use one made a moment ago.
pub const GRACE_MS: Millis = 60 * 60 * 1000;

/// Whether an instance (not terminated) may be running with the profile. An instance whose
/// profile the cloud does not report counts as using every profile of its node class.
pub fn used_by(profile: &InstanceProfile, instance: &Instance) -> bool {
    if instance.state == InstanceState::Terminated {
        return false;
    }
    match &instance.instance_profile {
        Some(name) => *name == profile.name,
        None => profile
            .nodeclass
            .as_deref()
            .is_some_and(|nc| instance.tags.get(labels::EC2NODECLASS).map(String::as_str) == Some(nc)),
    }
}

/// Whether anything still needs the profile: an instance running with it, or a live claim of
/// its node class (a launch may be on its way).
pub fn in_use(profile: &InstanceProfile, instances: &[Instance], claims: &[NodeClaim]) -> bool {
    instances.iter().any(|i| used_by(profile, i))
        || profile
            .nodeclass
            .as_deref()
            .is_some_and(|nc| claims.iter().any(|c| c.state.is_live() && c.nodeclass == nc))
}

/// The profiles to delete: no node class wants one of its name (`wanted`: the name the cloud
/// makes for each node class that names a role), nothing uses it ([`in_use`]), and it is older
/// than [`GRACE_MS`].
pub fn unused(
    profiles: &[InstanceProfile],
    wanted: &BTreeSet<String>,
    instances: &[Instance],
    claims: &[NodeClaim],
    now: Millis,
) -> Vec<InstanceProfile> {
    profiles
        .iter()
        .filter(|p| {
            !wanted.contains(&p.name)
                && !in_use(p, instances, claims)
                && now.saturating_sub(p.created_at) >= GRACE_MS
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn profile(name: &str, nodeclass: &str, created_at: Millis) -> InstanceProfile {
        InstanceProfile {
            name: name.into(),
            nodeclass: Some(nodeclass.into()),
            roles: vec!["NodeRole".into()],
            created_at,
        }
    }

    fn instance(nodeclass: &str, profile: Option<&str>, state: &str) -> Instance {
        let instance = testing::instance(&format!("i-{nodeclass}"))
            .state(state)
            .tag(labels::EC2NODECLASS, nodeclass);
        match profile {
            Some(profile) => instance.instance_profile(profile).build(),
            None => instance.build(),
        }
    }

    #[test]
    fn profiles_go_once_no_class_wants_them_nothing_uses_them_and_the_grace_is_past() {
        let now = 10 * GRACE_MS;
        let mut claim = crate::builders::launched_claim("gpu-1", 0);
        claim.nodeclass = "gpu".into();
        let profiles = [
            profile("p-wanted", "default", 0),
            profile("p-renamed", "default", 0),
            profile("p-running", "batch", 0),
            profile("p-untold", "legacy", 0),
            profile("p-claimed", "gpu", 0),
            profile("p-new", "gone", now - GRACE_MS / 2),
            profile("p-terminated", "old", 0),
            profile("p-gone", "removed", 0),
        ];
        let wanted = BTreeSet::from(["p-wanted".to_string()]);
        let instances = [
            instance("batch", Some("p-running"), "running"),
            // The cloud does not say which profile: its node class's profiles stay.
            instance("legacy", None, "running"),
            instance("old", Some("p-terminated"), "terminated"),
            // An instance of the renamed profile's class runs with the new one.
            instance("default", Some("p-wanted"), "running"),
        ];
        let names: Vec<String> = unused(&profiles, &wanted, &instances, &[claim], now)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["p-renamed", "p-terminated", "p-gone"]);
    }
}
