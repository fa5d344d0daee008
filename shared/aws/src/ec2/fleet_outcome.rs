//! What an instant `CreateFleet` response means for a launch: the instance it launched and the
//! offering that instance came from, the offerings EC2 reported out of capacity, and, when
//! nothing launched, the error a launch returns.
//!
//! [`interpret`] is pure: it takes the response as plain data ([`FleetResponse`]), so every
//! case is tested without EC2 or moto.

use std::collections::HashMap;

use aws_sdk_ec2::operation::create_fleet::CreateFleetOutput;
use aws_sdk_ec2::types::FleetLaunchTemplateOverrides;
use nodewright_core::catalog::CapacityType;
use nodewright_core::ports::{ErrorKind, LaunchOverride, OfferingKey, PortError, PortResult};

use crate::errors::{INVALID_INSTANCE_PROFILE, kind_for};

/// A `CreateFleet` response, reduced to what a launch reads from it.
#[derive(Clone, Debug, Default)]
pub(crate) struct FleetResponse {
    pub instances: Vec<FleetInstance>,
    pub errors: Vec<FleetError>,
}

/// The override EC2 names for an instance or an error.
#[derive(Clone, Debug, Default)]
pub(crate) struct FleetOverride {
    pub instance_type: Option<String>,
    pub zone: Option<String>,
    pub subnet_id: Option<String>,
}

/// One entry of the response's instance set.
#[derive(Clone, Debug, Default)]
pub(crate) struct FleetInstance {
    /// The first instance id of the entry; entries without one launched nothing.
    pub instance_id: Option<String>,
    pub instance_type: Option<String>,
    pub launched_from: Option<FleetOverride>,
}

/// One entry of the response's error set.
#[derive(Clone, Debug, Default)]
pub(crate) struct FleetError {
    pub code: Option<String>,
    pub message: Option<String>,
    pub from: Option<FleetOverride>,
}

/// The instance a fleet launched and the override it was launched from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FleetLaunch {
    pub instance_id: String,
    pub offering: OfferingKey,
    /// The launch's price for the offering; 0 if it was not among the launch's offerings.
    pub price: f64,
}

/// What a fleet response comes to.
#[derive(Debug)]
pub(crate) struct FleetOutcome {
    /// Offerings EC2 reported out of capacity, sorted, each once.
    pub out_of_capacity: Vec<OfferingKey>,
    /// An error named an invalid instance profile: it may have been deleted meanwhile.
    pub invalid_instance_profile: bool,
    /// The instance launched, or why none was.
    pub launched: PortResult<FleetLaunch>,
}

impl FleetResponse {
    pub(crate) fn from_sdk(output: &CreateFleetOutput) -> Self {
        FleetResponse {
            instances: output
                .instances()
                .iter()
                .map(|i| FleetInstance {
                    instance_id: i.instance_ids().first().cloned(),
                    instance_type: i.instance_type().map(|t| t.as_str().to_string()),
                    launched_from: i
                        .launch_template_and_overrides()
                        .and_then(|l| l.overrides())
                        .map(FleetOverride::from_sdk),
                })
                .collect(),
            errors: output
                .errors()
                .iter()
                .map(|e| FleetError {
                    code: e.error_code().map(str::to_string),
                    message: e.error_message().map(str::to_string),
                    from: e
                        .launch_template_and_overrides()
                        .and_then(|l| l.overrides())
                        .map(FleetOverride::from_sdk),
                })
                .collect(),
        }
    }
}

impl FleetOverride {
    fn from_sdk(o: &FleetLaunchTemplateOverrides) -> Self {
        FleetOverride {
            instance_type: o.instance_type().map(|t| t.as_str().to_string()),
            zone: o.availability_zone().map(str::to_string),
            subnet_id: o.subnet_id().map(str::to_string),
        }
    }

    /// The offering of the override; its zone from its subnet when EC2 names only that.
    fn offering(
        &self,
        capacity_type: CapacityType,
        zone_of_subnet: &HashMap<&str, &str>,
    ) -> Option<OfferingKey> {
        let zone = self.zone.as_deref().or_else(|| {
            self.subnet_id
                .as_deref()
                .and_then(|s| zone_of_subnet.get(s).copied())
        })?;
        Some(OfferingKey {
            instance_type: self.instance_type.clone()?,
            zone: zone.to_string(),
            capacity_type,
        })
    }
}

/// Interprets the response to a fleet of `candidates` (in price order, all of `capacity_type`)
/// launched for `claim_id`. Errors on overrides EC2 names count those offerings out of
/// capacity; other errors decide the kind of the launch's error if nothing launched.
pub(crate) fn interpret(
    claim_id: &str,
    capacity_type: CapacityType,
    candidates: &[&LaunchOverride],
    zone_of_subnet: &HashMap<&str, &str>,
    response: &FleetResponse,
) -> FleetOutcome {
    let mut out_of_capacity = Vec::new();
    let mut failures: Vec<(ErrorKind, String)> = Vec::new();
    let mut invalid_instance_profile = false;
    for e in &response.errors {
        let code = e.code.as_deref().unwrap_or("Unknown");
        let message = e.message.as_deref();
        invalid_instance_profile |= message.is_some_and(|m| m.contains(INVALID_INSTANCE_PROFILE));
        let offering = e
            .from
            .as_ref()
            .and_then(|o| o.offering(capacity_type, zone_of_subnet));
        match (kind_for(code, message), offering) {
            (Some(ErrorKind::InsufficientCapacity), Some(offering)) => out_of_capacity.push(offering),
            (kind, _) => failures.push((
                kind.unwrap_or(ErrorKind::Unavailable),
                format!("{code}: {}", message.unwrap_or_default()),
            )),
        }
    }
    out_of_capacity.sort();
    out_of_capacity.dedup();

    let launched = response.instances.iter().find_map(|i| {
        let instance_id = i.instance_id.clone()?;
        let offering = i
            .launched_from
            .as_ref()
            .and_then(|o| o.offering(capacity_type, zone_of_subnet))
            .or_else(|| {
                // Without the override, the cheapest offering of the reported type stands in.
                let instance_type = i.instance_type.as_deref()?;
                candidates
                    .iter()
                    .find(|o| o.instance_type == instance_type)
                    .map(|o| offering_key(o))
            })?;
        Some((instance_id, offering))
    });
    let launched = match launched {
        Some((instance_id, offering)) => Ok(FleetLaunch {
            price: candidates
                .iter()
                .find(|o| o.instance_type == offering.instance_type && o.zone == offering.zone)
                .map_or(0.0, |o| o.price),
            instance_id,
            offering,
        }),
        None => Err(nothing_launched(
            claim_id,
            candidates,
            &out_of_capacity,
            &failures,
        )),
    };
    FleetOutcome {
        out_of_capacity,
        invalid_instance_profile,
        launched,
    }
}

/// The error of a fleet that launched nothing: `InsufficientCapacity` if EC2 reported only
/// capacity errors (or none at all: then every offering tried counts as out of capacity),
/// else the kind of its first other error, with every message.
fn nothing_launched(
    claim_id: &str,
    candidates: &[&LaunchOverride],
    out_of_capacity: &[OfferingKey],
    failures: &[(ErrorKind, String)],
) -> PortError {
    let Some((kind, _)) = failures.first() else {
        let unavailable = if out_of_capacity.is_empty() {
            candidates.iter().map(|o| offering_key(o)).collect()
        } else {
            out_of_capacity.to_vec()
        };
        return PortError::insufficient_capacity(
            format!("claim {claim_id}: no offering had capacity"),
            unavailable,
        );
    };
    let mut err = PortError::new(
        *kind,
        format!(
            "CreateFleet for claim {claim_id} launched nothing: {}",
            failures
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ),
    );
    err.unavailable = out_of_capacity.to_vec();
    err
}

pub(crate) fn offering_key(o: &LaunchOverride) -> OfferingKey {
    OfferingKey {
        instance_type: o.instance_type.clone(),
        zone: o.zone.clone(),
        capacity_type: o.capacity_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPOT: CapacityType = CapacityType::Spot;

    fn offering(instance_type: &str, zone: &str, price: f64) -> LaunchOverride {
        LaunchOverride {
            instance_type: instance_type.into(),
            zone: zone.into(),
            capacity_type: SPOT,
            price,
        }
    }

    fn key(instance_type: &str, zone: &str) -> OfferingKey {
        OfferingKey {
            instance_type: instance_type.into(),
            zone: zone.into(),
            capacity_type: SPOT,
        }
    }

    /// An override as EC2 names it: by subnet, not zone.
    fn in_subnet(instance_type: &str, subnet: &str) -> Option<FleetOverride> {
        Some(FleetOverride {
            instance_type: Some(instance_type.into()),
            zone: None,
            subnet_id: Some(subnet.into()),
        })
    }

    fn launched(id: &str, instance_type: &str, subnet: &str) -> FleetInstance {
        FleetInstance {
            instance_id: Some(id.into()),
            instance_type: Some(instance_type.into()),
            launched_from: in_subnet(instance_type, subnet),
        }
    }

    fn error(code: &str, instance_type: &str, subnet: &str) -> FleetError {
        FleetError {
            code: Some(code.into()),
            message: Some(format!("{code} for {instance_type}")),
            from: in_subnet(instance_type, subnet),
        }
    }

    struct Launch {
        candidates: Vec<LaunchOverride>,
        zones: HashMap<&'static str, &'static str>,
    }

    impl Launch {
        fn new() -> Self {
            Launch {
                candidates: vec![
                    offering("m5.large", "us-east-1a", 0.03),
                    offering("m5.large", "us-east-1b", 0.04),
                    offering("c5.large", "us-east-1a", 0.05),
                ],
                zones: HashMap::from([("subnet-a", "us-east-1a"), ("subnet-b", "us-east-1b")]),
            }
        }

        fn interpret(&self, response: &FleetResponse) -> FleetOutcome {
            let candidates: Vec<&LaunchOverride> = self.candidates.iter().collect();
            interpret("claim-1", SPOT, &candidates, &self.zones, response)
        }
    }

    #[test]
    fn one_instance_launched_comes_with_its_offering_and_price() {
        let outcome = Launch::new().interpret(&FleetResponse {
            instances: vec![launched("i-1", "m5.large", "subnet-b")],
            errors: Vec::new(),
        });
        assert_eq!(
            outcome.launched.expect("launched"),
            FleetLaunch {
                instance_id: "i-1".into(),
                offering: key("m5.large", "us-east-1b"),
                price: 0.04,
            }
        );
        assert!(outcome.out_of_capacity.is_empty());
        assert!(!outcome.invalid_instance_profile);
    }

    #[test]
    fn an_instance_without_its_override_stands_for_the_cheapest_offering_of_its_type() {
        let outcome = Launch::new().interpret(&FleetResponse {
            instances: vec![FleetInstance {
                instance_id: Some("i-1".into()),
                instance_type: Some("m5.large".into()),
                launched_from: None,
            }],
            errors: Vec::new(),
        });
        let launch = outcome.launched.expect("launched");
        assert_eq!(launch.offering, key("m5.large", "us-east-1a"));
        assert_eq!(launch.price, 0.03);
    }

    #[test]
    fn capacity_errors_on_some_overrides_with_an_instance_mark_those_offerings() {
        let outcome = Launch::new().interpret(&FleetResponse {
            instances: vec![launched("i-1", "c5.large", "subnet-a")],
            errors: vec![
                error("InsufficientInstanceCapacity", "m5.large", "subnet-b"),
                error("InsufficientInstanceCapacity", "m5.large", "subnet-a"),
                // Reported twice, marked once.
                error("InsufficientInstanceCapacity", "m5.large", "subnet-a"),
            ],
        });
        assert_eq!(
            outcome.out_of_capacity,
            vec![key("m5.large", "us-east-1a"), key("m5.large", "us-east-1b")]
        );
        let launch = outcome.launched.expect("launched");
        assert_eq!(launch.instance_id, "i-1");
        assert_eq!(launch.offering, key("c5.large", "us-east-1a"));
        assert_eq!(launch.price, 0.05);
    }

    #[test]
    fn no_instance_and_only_capacity_errors_is_insufficient_capacity_naming_the_offerings() {
        let outcome = Launch::new().interpret(&FleetResponse {
            instances: Vec::new(),
            errors: vec![
                error("InsufficientInstanceCapacity", "m5.large", "subnet-a"),
                error("UnfulfillableCapacity", "c5.large", "subnet-a"),
            ],
        });
        let expected = vec![key("c5.large", "us-east-1a"), key("m5.large", "us-east-1a")];
        assert_eq!(outcome.out_of_capacity, expected);
        let err = outcome.launched.expect_err("nothing launched");
        assert_eq!(err.kind, ErrorKind::InsufficientCapacity);
        assert_eq!(err.unavailable, expected);
    }

    #[test]
    fn no_instance_and_no_error_counts_every_offering_out_of_capacity() {
        let outcome = Launch::new().interpret(&FleetResponse::default());
        // Nothing is marked: EC2 named no offering.
        assert!(outcome.out_of_capacity.is_empty());
        let err = outcome.launched.expect_err("nothing launched");
        assert_eq!(err.kind, ErrorKind::InsufficientCapacity);
        assert_eq!(
            err.unavailable,
            vec![
                key("m5.large", "us-east-1a"),
                key("m5.large", "us-east-1b"),
                key("c5.large", "us-east-1a"),
            ]
        );
    }

    #[test]
    fn a_non_capacity_error_decides_the_kind_and_keeps_the_capacity_errors() {
        let outcome = Launch::new().interpret(&FleetResponse {
            instances: Vec::new(),
            errors: vec![
                error("InsufficientInstanceCapacity", "m5.large", "subnet-a"),
                FleetError {
                    code: Some("InvalidParameterValue".into()),
                    message: Some("Invalid IAM Instance Profile name".into()),
                    from: None,
                },
            ],
        });
        assert!(outcome.invalid_instance_profile);
        let err = outcome.launched.expect_err("nothing launched");
        // Eventually consistent IAM: retried next round.
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert!(
            err.message.contains("Invalid IAM Instance Profile"),
            "{}",
            err.message
        );
        assert_eq!(err.unavailable, vec![key("m5.large", "us-east-1a")]);
    }

    #[test]
    fn an_unknown_error_without_a_code_is_unavailable() {
        let outcome = Launch::new().interpret(&FleetResponse {
            instances: Vec::new(),
            errors: vec![FleetError::default()],
        });
        let err = outcome.launched.expect_err("nothing launched");
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert!(err.message.contains("Unknown"), "{}", err.message);
        assert!(err.unavailable.is_empty());
    }

    #[test]
    fn a_non_capacity_error_beside_a_launched_instance_does_not_fail_the_launch() {
        let outcome = Launch::new().interpret(&FleetResponse {
            instances: vec![launched("i-1", "m5.large", "subnet-a")],
            errors: vec![error("InvalidParameterValue", "c5.large", "subnet-a")],
        });
        assert_eq!(outcome.launched.expect("launched").instance_id, "i-1");
        assert!(outcome.out_of_capacity.is_empty());
    }
}
