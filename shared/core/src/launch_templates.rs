//! Launch template hygiene: templates no running instance was launched from go, so that a
//! cluster does not pile up one per AMI release and node class change until it reaches EC2's
//! quota (5,000 per region). Templates are named after their content, so one deleted while a
//! launch still wants it is simply made again by that launch.

use std::collections::BTreeSet;

use crate::nodeclaim::NodeClaim;
use crate::pod::Millis;
use crate::ports::{Instance, InstanceState, LaunchTemplate};

/// The tag EC2 puts on an instance launched from a launch template.
pub const LAUNCH_TEMPLATE_TAG: &str = "aws:ec2launchtemplate:id";

/// Templates younger than this stay: a launch may be about to use one made a moment ago.
pub const GRACE_MS: Millis = 60 * 60 * 1000;

/// The templates to delete: no live claim records it, none of `instances` (this cluster's,
/// not terminated) carries EC2's tag naming it, and it is older than [`GRACE_MS`].
pub fn unused(
    templates: &[LaunchTemplate],
    instances: &[Instance],
    claims: &[NodeClaim],
    now: Millis,
) -> Vec<LaunchTemplate> {
    let by_name: BTreeSet<&str> = claims
        .iter()
        .filter_map(|c| c.disruption.launch_template.as_deref())
        .collect();
    let in_use: BTreeSet<&str> = instances
        .iter()
        .filter(|i| i.state != InstanceState::Terminated)
        .filter_map(|i| i.tags.get(LAUNCH_TEMPLATE_TAG).map(String::as_str))
        .collect();
    templates
        .iter()
        .filter(|t| {
            !in_use.contains(t.id.as_str())
                && !by_name.contains(t.name.as_str())
                && now.saturating_sub(t.created_at) >= GRACE_MS
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn template(id: &str, created_at: Millis) -> LaunchTemplate {
        LaunchTemplate {
            id: id.into(),
            name: format!("nodewright-demo-{id}"),
            created_at,
        }
    }

    fn instance(template: &str, state: &str) -> Instance {
        testing::instance(&format!("i-{template}"))
            .state(state)
            .tag(LAUNCH_TEMPLATE_TAG, template)
            .build()
    }

    #[test]
    fn templates_no_live_claim_or_running_instance_came_from_go_once_past_the_grace() {
        let now = 10 * GRACE_MS;
        let mut claim = crate::builders::launched_claim("default-1", 0);
        claim.disruption.launch_template = Some("nodewright-demo-lt-of-a-claim".into());
        let templates = [
            template("lt-of-a-claim", 0),
            template("lt-used", 0),
            template("lt-old", 0),
            template("lt-new", now - GRACE_MS / 2),
            template("lt-of-a-terminated-instance", 0),
        ];
        let instances = [
            instance("lt-used", "running"),
            instance("lt-of-a-terminated-instance", "terminated"),
        ];
        let ids: Vec<String> = unused(&templates, &instances, &[claim], now)
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(ids, ["lt-old", "lt-of-a-terminated-instance"]);
    }
}
