//! The provisioning path end to end: pending pods → AdmissionReview → webhook → SQS →
//! provisioner → CreateFleet and NodeClaim rows → kubelet registers nodes → pods bound.

use std::collections::BTreeSet;

use nodewright_core::nodeclaim::ClaimState;
use nodewright_core::ports::ClaimStore;
use nodewright_tests::World;

#[tokio::test]
async fn twenty_pending_pods_get_nodes_and_the_same_events_again_launch_nothing() {
    let w = World::new("e2e-twenty", 1000).await;
    w.create_pending_pods("inflate", 20, "1");

    let statuses = w.deliver_admission_reviews().await;
    assert_eq!(statuses, vec![200; 20], "every review is answered");
    let event = w.take_sqs_event().await;
    let records = event["Records"].as_array().expect("records").len();
    assert!(
        (1..=2).contains(&records),
        "20 reviews within a window or two become one or two requests, got {records}"
    );
    let response = w.run_provisioner(event.clone()).await;
    assert_eq!(response["batchItemFailures"], serde_json::json!([]));

    // Instances in EC2, tagged so each traces back to its cluster, pool, class and claim.
    let instances = w.instances().await;
    assert!(
        (1..20).contains(&instances.len()),
        "20 one-CPU pods share nodes: {} instances",
        instances.len()
    );
    for i in &instances {
        assert_eq!(
            i.tags.get("kubernetes.io/cluster/e2e-twenty").map(String::as_str),
            Some("owned")
        );
        assert_eq!(
            i.tags.get("eks:eks-cluster-name").map(String::as_str),
            Some("e2e-twenty")
        );
        assert_eq!(
            i.tags.get("karpenter.sh/nodepool").map(String::as_str),
            Some("default")
        );
        assert_eq!(
            i.tags.get("karpenter.k8s.aws/ec2nodeclass").map(String::as_str),
            Some("default")
        );
        assert!(World::claim_of(i).is_some(), "{:?}", i.tags);
    }

    // A NodeClaim row per instance, launched, holding all 20 pods between them.
    let claims = w.store.list_live().await.expect("claims");
    assert_eq!(claims.len(), instances.len());
    assert!(
        claims.iter().all(|c| c.state == ClaimState::Launched),
        "{claims:?}"
    );
    let claimed: BTreeSet<&str> = claims.iter().filter_map(|c| c.instance_id()).collect();
    let launched: BTreeSet<&str> = instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(claimed, launched);
    assert_eq!(claims.iter().map(|c| c.pods.len()).sum::<usize>(), 20);

    // The same events again, before any node registered: in-flight claims absorb the pods.
    w.deliver_admission_reviews().await;
    w.run_provisioner(event.clone()).await;
    let redelivered = w.take_sqs_event().await;
    if !redelivered["Records"].as_array().expect("records").is_empty() {
        w.run_provisioner(redelivered).await;
    }
    assert_eq!(
        w.instances().await.len(),
        instances.len(),
        "nothing launched twice"
    );

    // The kubelet registers the nodes; the scheduler binds every pod.
    let nodes = w.kubelet().await;
    assert_eq!(nodes.len(), instances.len());
    let report = w.kube.schedule_pending().expect("scheduler");
    assert!(report.unschedulable.is_empty(), "{:?}", report.unschedulable);
    assert_eq!(w.bound_pods(), 20);

    // And once more after binding: nothing is pending, nothing is launched.
    w.deliver_admission_reviews().await;
    w.run_provisioner(event).await;
    assert_eq!(w.instances().await.len(), instances.len());
}

#[tokio::test]
async fn the_getting_started_manifests_of_the_docs_parse_unchanged() {
    for object in nodewright_tests::getting_started("demo", 1000) {
        assert!(nodewright_tests::parses(&object), "{object}");
    }
}
