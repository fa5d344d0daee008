//! Drift: a node no longer matches what its NodePool and EC2NodeClass would launch now.
//!
//! Two causes are detected: the hash of the fields that shape a node (the pool template's
//! labels, annotations, taints and startup taints; the node class's spec without its selector
//! terms, which are compared by what they resolve to) differs from the one recorded at launch;
//! or the node's labels no longer satisfy the pool's requirements (an instance family removed,
//! a zone dropped); or the AMI the node runs is no longer one its node class's
//! `amiSelectorTerms` resolve to (a new EKS release behind `al2023@latest`, a changed
//! selector). `expireAfter` and `terminationGracePeriod` changes are not drift, as in
//! Karpenter.

use std::collections::BTreeSet;

use crate::nodeclaim::NodeClaim;
use crate::pod::Node;
use crate::scheduler::PoolInput;

/// Why the node has drifted, if it has. `images` are the AMIs the pool's node class resolves to
/// now (empty when not known: the AMI is then not compared).
pub fn drifted(
    claim: &NodeClaim,
    node: &Node,
    pool: &PoolInput,
    images: &BTreeSet<String>,
) -> Option<String> {
    if let Some(recorded) = &claim.disruption.template_hash
        && *recorded != crate::api::template_hash(&pool.nodepool, &pool.nodeclass)
    {
        return Some(format!(
            "NodePool {} or EC2NodeClass {} changed since the node was launched",
            pool.nodepool.name(),
            pool.nodeclass.name()
        ));
    }
    if let Some(image) = &claim.disruption.image_id
        && !images.is_empty()
        && !images.contains(image)
    {
        return Some(format!(
            "the node runs AMI {image}, and EC2NodeClass {} now selects {}",
            pool.nodeclass.name(),
            images.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    let requirements = pool.nodepool.requirements().ok()?;
    if !requirements.matches_labels(&node.labels) {
        return Some(format!(
            "the node no longer satisfies NodePool {}'s requirements",
            pool.nodepool.name()
        ));
    }
    None
}
