//! Instance profiles nodewright makes for node classes that name a `role`, through moto's IAM:
//! made with Karpenter's tags and the role, reused, given the new role when the node class's
//! changes, launched with, and cleaned up only when ours and unused.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use nodewright_aws::Ec2Cloud;
use nodewright_aws::testing::{FleetError, Moto, aws_config, getting_started_nodeclass, offering};
use nodewright_core::api::Ec2NodeClass;
use nodewright_core::catalog::CapacityType::OnDemand;
use nodewright_core::instance_profiles::{GRACE_MS, unused};
use nodewright_core::ports::{Cloud, ErrorKind, LaunchRequest};
use nodewright_core::testing::{VirtualClock, claim};

const CLUSTER: &str = "demo";
const START: i64 = 1_750_000_000_000;

struct Fixture {
    moto: Moto,
    clock: Arc<VirtualClock>,
    cloud: Ec2Cloud,
    iam: aws_sdk_iam::Client,
    ec2: aws_sdk_ec2::Client,
}

async fn fixture() -> Fixture {
    let moto = Moto::start();
    moto.create_network(CLUSTER).await;
    let clock = VirtualClock::shared(START);
    let cloud = Ec2Cloud::new(&moto.sdk_config(), aws_config(CLUSTER), clock.clone());
    let iam = aws_sdk_iam::Client::new(&moto.sdk_config());
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config());
    Fixture {
        moto,
        clock,
        cloud,
        iam,
        ec2,
    }
}

fn request(id: &str, nodeclass: Ec2NodeClass) -> LaunchRequest {
    LaunchRequest {
        claim: claim(id).any_zone().build(),
        nodeclass,
        overrides: vec![offering("m5.large", "us-east-1a", OnDemand, 0.096)],
    }
}

/// The profile's path, roles and tags as IAM has them.
async fn profile(iam: &aws_sdk_iam::Client, name: &str) -> (String, Vec<String>, BTreeMap<String, String>) {
    let out = iam
        .get_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
        .expect("get instance profile");
    let p = out.instance_profile().expect("a profile");
    (
        p.path().to_string(),
        p.roles().iter().map(|r| r.role_name().to_string()).collect(),
        p.tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
    )
}

/// The instance profile the launch template a launch used names.
async fn template_profile(ec2: &aws_sdk_ec2::Client, template: &str) -> Option<String> {
    let out = ec2
        .describe_launch_template_versions()
        .launch_template_name(template)
        .send()
        .await
        .expect("template versions");
    out.launch_template_versions()
        .first()?
        .launch_template_data()?
        .iam_instance_profile()?
        .name()
        .map(str::to_string)
}

fn calls(moto: &Moto, action: &str) -> usize {
    moto.calls().iter().filter(|c| c.action == action).count()
}

#[tokio::test]
async fn a_role_gets_a_tagged_profile_of_nodewrights_reused_and_given_the_new_role_when_it_changes() {
    let f = fixture().await;
    let nc = getting_started_nodeclass(CLUSTER);
    let name = f
        .cloud
        .managed_instance_profile(&nc)
        .expect("a role gets a profile");
    assert!(name.starts_with("nodewright_demo_"), "{name}");

    let launched = f
        .cloud
        .launch(&request("default-a", nc.clone()))
        .await
        .expect("launch");
    let (path, roles, tags) = profile(&f.iam, &name).await;
    assert_eq!(path, "/nodewright/");
    assert_eq!(roles, ["KarpenterNodeRole-demo"]);
    for (k, v) in [
        ("kubernetes.io/cluster/demo", "owned"),
        ("karpenter.k8s.aws/ec2nodeclass", "default"),
        ("topology.kubernetes.io/region", "us-east-1"),
        ("nodewright.io/nodeclaim", "instance-profile"),
    ] {
        assert_eq!(tags.get(k).map(String::as_str), Some(v), "tag {k} in {tags:?}");
    }
    let template = launched.launch_template.expect("a template");
    assert_eq!(
        template_profile(&f.ec2, &template).await.as_deref(),
        Some(name.as_str())
    );
    assert_eq!(launched.instance.instance_profile.as_deref(), Some(name.as_str()));
    // The node class's status names it.
    let resolved = f
        .cloud
        .resolve_nodeclass(&nc)
        .await
        .expect("resolve")
        .expect("EC2 says");
    assert_eq!(resolved.instance_profile.as_deref(), Some(name.as_str()));
    assert_eq!(calls(&f.moto, "CreateInstanceProfile"), 1);
    assert_eq!(calls(&f.moto, "AddRoleToInstanceProfile"), 1);

    // Reused: within this cold start without asking IAM, and by the next cold start as found.
    let asked = calls(&f.moto, "GetInstanceProfile");
    f.cloud
        .launch(&request("default-b", nc.clone()))
        .await
        .expect("launch");
    assert_eq!(
        calls(&f.moto, "GetInstanceProfile"),
        asked,
        "cached per cold start"
    );
    let cold = Ec2Cloud::new(&f.moto.sdk_config(), aws_config(CLUSTER), f.clock.clone());
    cold.launch(&request("default-c", nc.clone()))
        .await
        .expect("launch");
    assert_eq!(calls(&f.moto, "CreateInstanceProfile"), 1, "never made twice");
    assert_eq!(calls(&f.moto, "AddRoleToInstanceProfile"), 1, "its role kept");

    // The node class's role changes: the same profile now holds the new role alone.
    f.moto.create_node_role("NodeRole-v2").await;
    let mut changed = nc.clone();
    changed.spec.role = Some("NodeRole-v2".into());
    f.cloud
        .launch(&request("default-d", changed))
        .await
        .expect("launch");
    let (_, roles, _) = profile(&f.iam, &name).await;
    assert_eq!(roles, ["NodeRole-v2"]);

    // A role that does not exist is the node class's mistake, not a retryable failure.
    let mut missing = nc.clone();
    missing.spec.role = Some("NoSuchRole".into());
    let err = f
        .cloud
        .launch(&request("default-e", missing))
        .await
        .expect_err("no role");
    assert_eq!(err.kind, ErrorKind::Invalid, "{err}");

    // A node class naming its instance profile gets none of ours.
    let mut explicit = nc.clone();
    explicit.spec.instance_profile = Some("theirs".into());
    assert_eq!(f.cloud.managed_instance_profile(&explicit), None);
}

#[tokio::test]
async fn a_profile_iam_has_not_propagated_to_ec2_yet_fails_the_launch_as_retryable() {
    let f = fixture().await;
    f.moto.fleet_errors(
        &[FleetError::ice("m5.large").code("InvalidParameterValue").message(
            "Value (nodewright_demo_x) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name",
        )],
        Some(1),
    );
    let nc = getting_started_nodeclass(CLUSTER);
    let err = f
        .cloud
        .launch(&request("default-a", nc.clone()))
        .await
        .expect_err("not yet");
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(err.kind.is_retryable());
    // The next launch makes sure of the profile again and goes through.
    f.cloud
        .launch(&request("default-a", nc))
        .await
        .expect("then it launches");
    assert_eq!(
        calls(&f.moto, "GetInstanceProfile"),
        2,
        "asked again after the failure"
    );
}

#[tokio::test]
async fn cleanup_deletes_only_this_clusters_profiles_that_no_class_wants_and_nothing_uses() {
    let f = fixture().await;
    let gone = getting_started_nodeclass(CLUSTER);
    let mut kept = getting_started_nodeclass(CLUSTER);
    kept.metadata.name = "kept".into();
    let mut idle = getting_started_nodeclass(CLUSTER);
    idle.metadata.name = "idle".into();
    let running = f
        .cloud
        .launch(&request("default-a", gone.clone()))
        .await
        .expect("launch");
    f.cloud
        .launch(&request("kept-a", kept.clone()))
        .await
        .expect("launch");
    let idle_launch = f
        .cloud
        .launch(&request("idle-a", idle.clone()))
        .await
        .expect("launch");
    f.cloud
        .terminate(&idle_launch.instance.id)
        .await
        .expect("terminate");
    // Someone else's profiles under our path and outside it: never ours to list or delete.
    for (name, path, cluster) in [
        ("nodewright_other_0123456789abcdef", "/nodewright/", "other"),
        ("demo_1234567890", "/", "demo"),
        ("nodewright_demo_untagged", "/nodewright/", ""),
    ] {
        let mut create = f
            .iam
            .create_instance_profile()
            .instance_profile_name(name)
            .path(path);
        if !cluster.is_empty() {
            create = create.tags(
                aws_sdk_iam::types::Tag::builder()
                    .key(format!("kubernetes.io/cluster/{cluster}"))
                    .value("owned")
                    .build()
                    .expect("tag"),
            );
        }
        create.send().await.expect("a foreign profile");
    }

    let profiles = f.cloud.list_instance_profiles().await.expect("list");
    let listed: BTreeSet<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
    let name_of = |nc: &Ec2NodeClass| f.cloud.managed_instance_profile(nc).expect("a profile");
    let expected: BTreeSet<String> = [name_of(&gone), name_of(&kept), name_of(&idle)].into();
    assert_eq!(listed, expected.iter().map(String::as_str).collect(), "only ours");
    assert!(
        profiles
            .iter()
            .any(|p| p.nodeclass.as_deref() == Some("kept") && p.roles == ["KarpenterNodeRole-demo"])
    );

    // Node classes `default` and `idle` were deleted; `kept` remains.
    let wanted: BTreeSet<String> = [name_of(&kept)].into();
    // IAM stamps creation with the wall clock.
    let made = profiles.iter().map(|p| p.created_at).max().unwrap_or_default();
    let later = made + GRACE_MS;
    let instances = f.cloud.list_instances().await.expect("instances");
    let doomed: Vec<String> = unused(&profiles, &wanted, &instances, &[], later)
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(doomed, [name_of(&idle)], "the running instance keeps its profile");
    // Nothing is deleted within the grace after it was made.
    assert!(unused(&profiles, &wanted, &instances, &[], made).is_empty());

    for name in &doomed {
        f.cloud.delete_instance_profile(name).await.expect("deleted");
        f.cloud
            .delete_instance_profile(name)
            .await
            .expect("already gone is done");
    }
    f.cloud.terminate(&running.instance.id).await.expect("terminate");
    let instances = f.cloud.list_instances().await.expect("instances");
    let profiles = f.cloud.list_instance_profiles().await.expect("list");
    let doomed: Vec<String> = unused(&profiles, &wanted, &instances, &[], later)
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(doomed, [name_of(&gone)], "once its instance is gone");
    f.cloud
        .delete_instance_profile(&doomed[0])
        .await
        .expect("deleted");

    let left: BTreeSet<String> = f
        .iam
        .list_instance_profiles()
        .send()
        .await
        .expect("list")
        .instance_profiles()
        .iter()
        .map(|p| p.instance_profile_name().to_string())
        .collect();
    let want: BTreeSet<String> = [
        name_of(&kept),
        "nodewright_other_0123456789abcdef".to_string(),
        "demo_1234567890".to_string(),
        "nodewright_demo_untagged".to_string(),
    ]
    .into();
    assert_eq!(left, want);

    // A launch for a node class whose profile was deleted makes it again.
    f.cloud
        .launch(&request("idle-b", idle.clone()))
        .await
        .expect("launch after the profile was deleted");
    let (_, roles, _) = profile(&f.iam, &name_of(&idle)).await;
    assert_eq!(roles, ["KarpenterNodeRole-demo"]);
}
