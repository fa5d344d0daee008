//! Subnets and security groups from an EC2NodeClass's selector terms. Terms are ORed; the
//! fields of one term are ANDed; a tag value of `*` matches any value of that key.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;
use nodewright_core::api::{SecurityGroupSelectorTerm, SelectorTerm};
use nodewright_core::ports::{ErrorKind, PortError, PortResult};

use crate::errors::from_sdk;

/// A subnet a node may be launched in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subnet {
    pub id: String,
    pub zone: String,
    pub available_ips: i32,
}

/// Filters for a term's tags.
fn tag_filters(tags: &BTreeMap<String, String>) -> Vec<Filter> {
    tags.iter()
        .map(|(k, v)| {
            if v == "*" {
                Filter::builder().name("tag-key").values(k).build()
            } else {
                Filter::builder().name(format!("tag:{k}")).values(v).build()
            }
        })
        .collect()
}

pub(crate) async fn subnets(ec2: &aws_sdk_ec2::Client, terms: &[SelectorTerm]) -> PortResult<Vec<Subnet>> {
    let mut found: BTreeMap<String, Subnet> = BTreeMap::new();
    for term in terms {
        let mut filters = tag_filters(&term.tags);
        if let Some(id) = &term.id {
            filters.push(Filter::builder().name("subnet-id").values(id).build());
        }
        if filters.is_empty() {
            return Err(PortError::new(
                ErrorKind::Invalid,
                "a subnetSelectorTerm must set id or tags",
            ));
        }
        let mut pages = ec2
            .describe_subnets()
            .set_filters(Some(filters))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk("DescribeSubnets", e))?;
            for s in page.subnets() {
                let (Some(id), Some(zone)) = (s.subnet_id(), s.availability_zone()) else {
                    continue;
                };
                found.insert(
                    id.to_string(),
                    Subnet {
                        id: id.to_string(),
                        zone: zone.to_string(),
                        available_ips: s.available_ip_address_count().unwrap_or(0),
                    },
                );
            }
        }
    }
    Ok(found.into_values().collect())
}

/// The subnet to launch into for each zone: the one with the most free addresses (ties go to
/// the smaller id, so the choice is stable).
pub(crate) fn best_per_zone(subnets: &[Subnet]) -> BTreeMap<String, Subnet> {
    let mut best: BTreeMap<String, Subnet> = BTreeMap::new();
    for s in subnets {
        let better = match best.get(&s.zone) {
            None => true,
            Some(b) => {
                (s.available_ips, std::cmp::Reverse(&s.id)) > (b.available_ips, std::cmp::Reverse(&b.id))
            }
        };
        if better {
            best.insert(s.zone.clone(), s.clone());
        }
    }
    best
}

pub(crate) async fn security_groups(
    ec2: &aws_sdk_ec2::Client,
    terms: &[SecurityGroupSelectorTerm],
) -> PortResult<Vec<String>> {
    let mut found = std::collections::BTreeSet::new();
    for term in terms {
        let mut filters = tag_filters(&term.tags);
        if let Some(id) = &term.id {
            filters.push(Filter::builder().name("group-id").values(id).build());
        }
        if let Some(name) = &term.name {
            filters.push(Filter::builder().name("group-name").values(name).build());
        }
        if filters.is_empty() {
            return Err(PortError::new(
                ErrorKind::Invalid,
                "a securityGroupSelectorTerm must set id, name or tags",
            ));
        }
        let mut pages = ec2
            .describe_security_groups()
            .set_filters(Some(filters))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk("DescribeSecurityGroups", e))?;
            found.extend(
                page.security_groups()
                    .iter()
                    .filter_map(|g| g.group_id().map(str::to_string)),
            );
        }
    }
    Ok(found.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(id: &str, zone: &str, ips: i32) -> Subnet {
        Subnet {
            id: id.into(),
            zone: zone.into(),
            available_ips: ips,
        }
    }

    #[test]
    fn picks_the_subnet_with_most_free_addresses_in_each_zone() {
        let best = best_per_zone(&[
            subnet("subnet-a1", "us-east-1a", 10),
            subnet("subnet-a2", "us-east-1a", 200),
            subnet("subnet-b1", "us-east-1b", 5),
            subnet("subnet-b0", "us-east-1b", 5),
        ]);
        assert_eq!(best["us-east-1a"].id, "subnet-a2");
        assert_eq!(best["us-east-1b"].id, "subnet-b0", "ties go to the smaller id");
    }

    #[test]
    fn a_star_tag_value_matches_any_value_of_the_key() {
        let filters = tag_filters(&BTreeMap::from([
            ("karpenter.sh/discovery".to_string(), "*".to_string()),
            ("team".to_string(), "a".to_string()),
        ]));
        assert_eq!(filters[0].name(), Some("tag-key"));
        assert_eq!(filters[0].values(), ["karpenter.sh/discovery"]);
        assert_eq!(filters[1].name(), Some("tag:team"));
    }
}
