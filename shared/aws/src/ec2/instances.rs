//! Instances as the core sees them: listing, finding a claim's instance, terminating.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, InstanceLifecycleType};
use nodewright_core::catalog::CapacityType;
use nodewright_core::ports::{CLAIM_TAG, ErrorKind, Instance, InstanceState, PortResult};

use crate::errors::from_sdk;

/// States of an instance that still is (or will be) a node.
const LIVE: &[&str] = &["pending", "running", "stopping", "stopped"];
/// Every state but `terminated`.
const NOT_TERMINATED: &[&str] = &["pending", "running", "shutting-down", "stopping", "stopped"];

/// The tag every instance of a cluster carries, EKS's own convention.
pub(crate) fn cluster_tag(cluster: &str) -> String {
    format!("kubernetes.io/cluster/{cluster}")
}

/// Instances of the cluster that nodewright launched, in the given states. Filtering on the
/// claim tag as well as the cluster tag matters: managed node groups carry the cluster tag too,
/// and their instances are not ours to count or to collect as orphans.
pub(crate) async fn describe(
    ec2: &aws_sdk_ec2::Client,
    cluster: &str,
    claim_id: Option<&str>,
    states: &[&str],
) -> PortResult<Vec<Instance>> {
    let mut filters = vec![
        Filter::builder()
            .name(format!("tag:{}", cluster_tag(cluster)))
            .values("owned")
            .build(),
        Filter::builder()
            .name("instance-state-name")
            .set_values(Some(states.iter().map(|s| s.to_string()).collect()))
            .build(),
    ];
    filters.push(match claim_id {
        Some(id) => Filter::builder()
            .name(format!("tag:{CLAIM_TAG}"))
            .values(id)
            .build(),
        None => Filter::builder().name("tag-key").values(CLAIM_TAG).build(),
    });
    let mut out = Vec::new();
    let mut pages = ec2
        .describe_instances()
        .set_filters(Some(filters))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| from_sdk("DescribeInstances", e))?;
        for reservation in page.reservations() {
            out.extend(reservation.instances().iter().filter_map(convert));
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

pub(crate) async fn live_for_claim(
    ec2: &aws_sdk_ec2::Client,
    cluster: &str,
    claim_id: &str,
) -> PortResult<Option<Instance>> {
    let mut found = describe(ec2, cluster, Some(claim_id), LIVE).await?;
    // Two live instances for one claim would be a bug elsewhere; the oldest is the claim's.
    found.sort_by_key(|i| i.launched_at);
    Ok(found.into_iter().next())
}

pub(crate) async fn not_terminated(ec2: &aws_sdk_ec2::Client, cluster: &str) -> PortResult<Vec<Instance>> {
    describe(ec2, cluster, None, NOT_TERMINATED).await
}

pub(crate) async fn terminate(ec2: &aws_sdk_ec2::Client, instance_id: &str) -> PortResult<()> {
    match ec2.terminate_instances().instance_ids(instance_id).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let err = from_sdk("TerminateInstances", e);
            if err.kind == ErrorKind::NotFound {
                return Ok(());
            }
            Err(err)
        }
    }
}

fn convert(i: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
    let tags: BTreeMap<String, String> = i
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
        .collect();
    Some(Instance {
        id: i.instance_id()?.to_string(),
        instance_type: i
            .instance_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        zone: i
            .placement()
            .and_then(|p| p.availability_zone())
            .unwrap_or_default()
            .to_string(),
        capacity_type: match i.instance_lifecycle() {
            Some(InstanceLifecycleType::Spot) => CapacityType::Spot,
            _ => CapacityType::OnDemand,
        },
        state: InstanceState::from_ec2(i.state().and_then(|s| s.name()).map_or("", |n| n.as_str())),
        launched_at: i.launch_time().and_then(|t| t.to_millis().ok()).unwrap_or(0),
        claim_id: tags.get(CLAIM_TAG).cloned(),
        private_dns_name: i.private_dns_name().filter(|d| !d.is_empty()).map(str::to_string),
        image_id: i.image_id().filter(|d| !d.is_empty()).map(str::to_string),
        // The ARN ends with the name (a profile's path comes before it).
        instance_profile: i
            .iam_instance_profile()
            .and_then(|p| p.arn())
            .and_then(|arn| arn.rsplit('/').next())
            .filter(|n| !n.is_empty())
            .map(str::to_string),
        tags,
    })
}
