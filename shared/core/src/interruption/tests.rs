use std::collections::BTreeMap;

use super::*;
use crate::testing::claim;

pub const SPOT_WARNING: &str = include_str!("fixtures/spot-warning.json");
pub const REBALANCE: &str = include_str!("fixtures/rebalance.json");
pub const SCHEDULED_CHANGE: &str = include_str!("fixtures/scheduled-change.json");
pub const STOPPING: &str = include_str!("fixtures/state-stopping.json");
pub const TERMINATED: &str = include_str!("fixtures/state-terminated.json");
pub const UNEXPECTED_FIELDS: &str = include_str!("fixtures/unexpected-fields.json");
pub const MISSING_INSTANCE: &str = include_str!("fixtures/missing-instance.json");

const INSTANCE: &str = "i-0b662ef9931388ba0";
const NOW: Millis = 1_796_126_400_000;

fn spot_claim() -> NodeClaim {
    claim("default-a")
        .created_at(NOW - 3_600_000)
        .capacity_types(&[CapacityType::Spot])
        .launched(INSTANCE, NOW - 3_600_000)
        .price(0.03)
        .state(ClaimState::Initialized)
        .build()
}

fn claims(c: NodeClaim) -> BTreeMap<String, NodeClaim> {
    BTreeMap::from([(INSTANCE.to_string(), c)])
}

fn no_grace(_: &str) -> Option<Millis> {
    None
}

#[test]
fn every_kind_karpenter_subscribes_to_is_read_from_its_eventbridge_envelope() {
    let kind = |body: &str| parse(body).expect("parses").expect("acts").kind;
    assert_eq!(kind(SPOT_WARNING), Kind::SpotInterruption);
    assert_eq!(kind(REBALANCE), Kind::Rebalance);
    assert_eq!(kind(SCHEDULED_CHANGE), Kind::ScheduledChange);
    assert_eq!(kind(STOPPING), Kind::Stopping);
    assert_eq!(kind(TERMINATED), Kind::Terminated);
    let notice = parse(SCHEDULED_CHANGE).expect("parses").expect("acts");
    assert_eq!(notice.instance_ids, vec![INSTANCE.to_string()]);
    assert_eq!(notice.id, "7bf73129-1428-4cd3-a780-95db273d1602");
}

#[test]
fn fields_added_later_are_ignored_and_missing_ones_are_a_clear_error() {
    assert_eq!(
        parse(UNEXPECTED_FIELDS).expect("parses").map(|n| n.kind),
        Some(Kind::SpotInterruption)
    );
    let err = parse(MISSING_INSTANCE).expect_err("no instance id").to_string();
    assert!(err.contains("instance-id"), "{err}");
    assert!(matches!(parse("not json"), Err(ParseError::Envelope(_))));
    let other = SPOT_WARNING.replace("EC2 Spot Instance Interruption Warning", "EC2 Something New");
    assert!(matches!(parse(&other), Err(ParseError::Unknown { .. })));
    let bad_id = SPOT_WARNING.replace(
        "\"instance-id\": \"i-0b662ef9931388ba0\"",
        "\"instance-id\": \"vol-1\"",
    );
    assert!(parse(&bad_id).is_err());
}

#[test]
fn events_that_ask_for_nothing_are_read_as_nothing() {
    assert_eq!(parse(&STOPPING.replace("stopping", "running")), Ok(None));
    let other_service = SCHEDULED_CHANGE.replace("\"service\": \"EC2\"", "\"service\": \"RDS\"");
    assert_eq!(parse(&other_service), Ok(None));
    let issue = SCHEDULED_CHANGE.replace("scheduledChange", "issue");
    assert_eq!(parse(&issue), Ok(None));
}

#[test]
fn a_spot_warning_drains_within_two_minutes_and_marks_the_offering_unavailable() {
    let notices = vec![parse(SPOT_WARNING).expect("parses").expect("acts")];
    let actions = plan(&notices, &claims(spot_claim()), Rebalance::Record, &no_grace, NOW);
    let [
        Action::Drain {
            deadline,
            unavailable,
            ..
        },
    ] = actions.as_slice()
    else {
        panic!("{actions:?}");
    };
    assert_eq!(*deadline, Some(NOW + SPOT_NOTICE_MS));
    let key = unavailable.as_ref().expect("the offering");
    assert_eq!(
        (key.instance_type.as_str(), key.zone.as_str(), key.capacity_type),
        ("m5.large", "us-east-1a", CapacityType::Spot)
    );
}

#[test]
fn a_rebalance_is_recorded_unless_configured_to_drain() {
    let notices = vec![parse(REBALANCE).expect("parses").expect("acts")];
    let recorded = plan(&notices, &claims(spot_claim()), Rebalance::Record, &no_grace, NOW);
    assert!(matches!(recorded.as_slice(), [Action::Record { .. }]));
    let drained = plan(&notices, &claims(spot_claim()), Rebalance::Drain, &no_grace, NOW);
    assert!(matches!(drained.as_slice(), [Action::Drain { .. }]));
}

#[test]
fn instances_not_ours_and_claims_already_terminating_change_nothing() {
    let notices = vec![parse(SPOT_WARNING).expect("parses").expect("acts")];
    assert!(plan(&notices, &BTreeMap::new(), Rebalance::Record, &no_grace, NOW).is_empty());
    let mut terminating = spot_claim();
    terminating.state = ClaimState::Terminating;
    assert!(
        plan(
            &notices,
            &claims(terminating.clone()),
            Rebalance::Record,
            &no_grace,
            NOW
        )
        .is_empty()
    );
    // The instance going is still news to a terminating claim: its Node and row can close.
    let gone = vec![parse(TERMINATED).expect("parses").expect("acts")];
    assert!(matches!(
        plan(&gone, &claims(terminating), Rebalance::Record, &no_grace, NOW).as_slice(),
        [Action::Gone { .. }]
    ));
}

#[test]
fn a_scheduled_change_drains_within_the_pools_grace_period() {
    let notices = vec![parse(SCHEDULED_CHANGE).expect("parses").expect("acts")];
    let grace = |_: &str| Some(600_000);
    let actions = plan(&notices, &claims(spot_claim()), Rebalance::Record, &grace, NOW);
    assert!(
        matches!(actions.as_slice(), [Action::Drain { deadline: Some(d), unavailable: None, .. }] if *d == NOW + 600_000),
        "{actions:?}"
    );
}
