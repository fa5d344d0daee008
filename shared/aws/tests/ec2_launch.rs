//! Launching, finding and terminating instances through moto. Each test owns its moto, since
//! injected failures apply to a whole server.

use std::sync::Arc;

use base64::Engine as _;
use nodewright_aws::Ec2Cloud;
use nodewright_aws::testing::{
    FleetError, Moto, TestNetwork, aws_config, getting_started_nodeclass, offering,
};
use nodewright_aws::userdata::mime;
use nodewright_core::api::Ec2NodeClass;
use nodewright_core::catalog::CapacityType::{OnDemand, Spot};
use nodewright_core::ports::{CLAIM_TAG, Cloud, ErrorKind, LaunchOverride, LaunchRequest, OfferingKey};
use nodewright_core::testing::{VirtualClock, claim};

const CLUSTER: &str = "demo";
const START: i64 = 1_750_000_000_000;

struct Fixture {
    moto: Moto,
    network: TestNetwork,
    clock: Arc<VirtualClock>,
    cloud: Ec2Cloud,
    ec2: aws_sdk_ec2::Client,
}

async fn fixture() -> Fixture {
    let moto = Moto::start();
    let network = moto.create_network(CLUSTER).await;
    let clock = VirtualClock::shared(START);
    let cloud = Ec2Cloud::new(&moto.sdk_config(), aws_config(CLUSTER), clock.clone());
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config());
    Fixture {
        moto,
        network,
        clock,
        cloud,
        ec2,
    }
}

fn request(id: &str, nodeclass: Ec2NodeClass, overrides: Vec<LaunchOverride>) -> LaunchRequest {
    LaunchRequest {
        // No zone of its own: the overrides decide where it may go.
        claim: claim(id).any_zone().build(),
        nodeclass,
        overrides,
    }
}

fn on_demand(instance_type: &str, zone: &str, price: f64) -> LaunchOverride {
    offering(instance_type, zone, OnDemand, price)
}

fn key(
    instance_type: &str,
    zone: &str,
    capacity_type: nodewright_core::catalog::CapacityType,
) -> OfferingKey {
    OfferingKey {
        instance_type: instance_type.into(),
        zone: zone.into(),
        capacity_type,
    }
}

async fn describe(ec2: &aws_sdk_ec2::Client, id: &str) -> aws_sdk_ec2::types::Instance {
    ec2.describe_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("describe instances")
        .reservations()[0]
        .instances()[0]
        .clone()
}

async fn ssm_value(moto: &Moto, name: &str) -> String {
    aws_sdk_ssm::Client::new(&moto.sdk_config())
        .get_parameter()
        .name(name)
        .send()
        .await
        .expect("parameter")
        .parameter
        .and_then(|p| p.value)
        .expect("value")
}

#[tokio::test]
async fn launches_the_getting_started_nodeclass_with_every_tag_imdsv2_and_a_nodeconfig() {
    let f = fixture().await;
    let mut nc = getting_started_nodeclass(CLUSTER);
    nc.spec.tags.insert("team".into(), "payments".into());
    let mut req = request(
        "default-x7k2p",
        nc,
        vec![
            on_demand("m5.large", "us-east-1b", 0.096),
            on_demand("m5.xlarge", "us-east-1c", 0.192),
        ],
    );
    req.claim.labels.insert("workload".into(), "batch".into());

    let launched = f.cloud.launch(&req).await.expect("launch");
    assert_eq!(launched.instance.instance_type, "m5.large");
    assert_eq!(launched.instance.zone, "us-east-1b");
    assert_eq!(launched.instance.claim_id.as_deref(), Some("default-x7k2p"));
    assert_eq!(launched.price, 0.096);
    assert!(launched.unavailable.is_empty());

    let instance = describe(&f.ec2, &launched.instance.id).await;
    let tags: std::collections::BTreeMap<_, _> = instance
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
        .collect();
    for (k, v) in [
        ("kubernetes.io/cluster/demo", "owned"),
        ("eks:eks-cluster-name", "demo"),
        ("karpenter.sh/nodepool", "default"),
        ("karpenter.k8s.aws/ec2nodeclass", "default"),
        (CLAIM_TAG, "default-x7k2p"),
        ("Name", "default-x7k2p"),
        ("team", "payments"),
    ] {
        assert_eq!(tags.get(k).copied(), Some(v), "tag {k} in {tags:?}");
    }
    assert_eq!(
        instance.subnet_id(),
        f.network.subnet_in("us-east-1b").map(|s| s.id.as_str())
    );
    let al2023 = ssm_value(
        &f.moto,
        "/aws/service/eks/optimized-ami/1.32/amazon-linux-2023/x86_64/standard/recommended/image_id",
    )
    .await;
    assert_eq!(instance.image_id(), Some(al2023.as_str()));
    // The claim learns the AMI at launch, and the node class resolves to it until EKS releases
    // another (drift by AMI compares the two).
    assert_eq!(launched.instance.image_id.as_deref(), Some(al2023.as_str()));
    // The node class's status lists what its selectors resolve to.
    let resolved = f
        .cloud
        .resolve_nodeclass(&req.nodeclass)
        .await
        .expect("resolves")
        .expect("EC2 says");
    assert!(
        resolved.subnets.iter().any(
            |r| r.zone == "us-east-1b" && f.network.subnet_in("us-east-1b").is_some_and(|s| s.id == r.id)
        )
    );
    assert!(!resolved.security_groups.is_empty());
    assert!(resolved.amis.iter().any(|a| a.id == al2023), "{resolved:?}");
    assert!(resolved.instance_profile.is_some());
    let images = f.cloud.images(&req.nodeclass).await.expect("images");
    assert!(images.contains(&al2023), "{images:?}");
    let listed = f.cloud.list_instances().await.expect("list");
    let mine = listed
        .iter()
        .find(|i| i.id == launched.instance.id)
        .expect("listed");
    assert_eq!(mine.image_id.as_deref(), Some(al2023.as_str()));

    let templates = f
        .ec2
        .describe_launch_templates()
        .send()
        .await
        .expect("templates")
        .launch_templates()
        .to_vec();
    assert_eq!(templates.len(), 1);
    let name = templates[0].launch_template_name().expect("name");
    assert!(name.starts_with("nodewright/demo/"), "{name}");
    let version = f
        .ec2
        .describe_launch_template_versions()
        .launch_template_name(name)
        .send()
        .await
        .expect("versions")
        .launch_template_versions()[0]
        .clone();
    let data = version.launch_template_data().expect("data");
    let metadata = data.metadata_options().expect("metadata options");
    assert_eq!(metadata.http_tokens().map(|t| t.as_str()), Some("required"));
    assert_eq!(metadata.http_put_response_hop_limit(), Some(1));
    assert_eq!(metadata.http_endpoint().map(|e| e.as_str()), Some("enabled"));
    let root = &data.block_device_mappings()[0];
    assert_eq!(root.device_name(), Some("/dev/xvda"));
    let ebs = root.ebs().expect("ebs");
    assert_eq!((ebs.volume_size(), ebs.encrypted()), (Some(20), Some(true)));
    assert_eq!(ebs.volume_type().map(|t| t.as_str()), Some("gp3"));
    // The role's profile is nodewright's own (tests/iam_profiles.rs), not one named like it.
    assert_eq!(
        data.iam_instance_profile().and_then(|p| p.name()),
        f.cloud.managed_instance_profile(&req.nodeclass).as_deref()
    );
    assert!(
        data.iam_instance_profile()
            .and_then(|p| p.name())
            .is_some_and(|n| n.starts_with("nodewright_demo_"))
    );

    let user_data = base64::engine::general_purpose::STANDARD
        .decode(data.user_data().expect("user data"))
        .expect("base64");
    let parts = mime::parse(std::str::from_utf8(&user_data).expect("utf-8")).expect("MIME");
    let node_config = parts.last().expect("a part");
    assert_eq!(node_config.headers[0].1, mime::NODE_CONFIG);
    let yaml: serde_json::Value = serde_saphyr::from_str(&node_config.body).expect("yaml");
    assert_eq!(yaml["kind"].as_str(), Some("NodeConfig"));
    assert_eq!(yaml["spec"]["cluster"]["name"].as_str(), Some("demo"));
    assert_eq!(yaml["spec"]["cluster"]["cidr"].as_str(), Some("10.100.0.0/16"));
    let flags: Vec<&str> = yaml["spec"]["kubelet"]["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert_eq!(
        flags,
        ["--node-labels=karpenter.sh/nodepool=default,workload=batch"]
    );
}

#[tokio::test]
async fn launching_the_same_claim_twice_returns_the_same_instance() {
    let f = fixture().await;
    let req = request(
        "default-twice",
        getting_started_nodeclass(CLUSTER),
        vec![on_demand("m5.large", "us-east-1a", 0.096)],
    );
    let first = f.cloud.launch(&req).await.expect("first launch");
    let second = f.cloud.launch(&req).await.expect("second launch");
    assert_eq!(first.instance.id, second.instance.id);
    assert_eq!(second.price, 0.096);
    let all = f.cloud.list_instances().await.expect("list");
    assert_eq!(all.len(), 1);
}

#[tokio::test]
async fn list_instances_finds_instances_by_claim_and_leaves_out_terminated_and_foreign_ones() {
    let f = fixture().await;
    let nc = getting_started_nodeclass(CLUSTER);
    let a = f
        .cloud
        .launch(&request(
            "default-aaaaa",
            nc.clone(),
            vec![on_demand("m5.large", "us-east-1a", 0.1)],
        ))
        .await
        .expect("launch a");
    let b = f
        .cloud
        .launch(&request(
            "default-bbbbb",
            nc,
            vec![on_demand("c5.large", "us-east-1c", 0.1)],
        ))
        .await
        .expect("launch b");
    // A managed node group instance: the cluster tag, but no claim.
    let image = ssm_value(
        &f.moto,
        "/aws/service/eks/optimized-ami/1.32/amazon-linux-2023/x86_64/standard/recommended/image_id",
    )
    .await;
    f.ec2
        .run_instances()
        .image_id(image)
        .min_count(1)
        .max_count(1)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("kubernetes.io/cluster/demo")
                        .value("owned")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("run a foreign instance");

    let listed = f.cloud.list_instances().await.expect("list");
    let mut ids: Vec<_> = listed.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    let mut expected = vec![a.instance.id.clone(), b.instance.id.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    let found = listed.iter().find(|i| i.id == b.instance.id).expect("b listed");
    assert_eq!(found.claim_id.as_deref(), Some("default-bbbbb"));
    assert_eq!(found.instance_type, "c5.large");
    assert_eq!(found.zone, "us-east-1c");
    assert_eq!(found.capacity_type, OnDemand);
    assert_eq!(
        found.tags.get(CLAIM_TAG).map(String::as_str),
        Some("default-bbbbb")
    );

    f.cloud.terminate(&a.instance.id).await.expect("terminate");
    let listed = f.cloud.list_instances().await.expect("list");
    assert_eq!(
        listed.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        [b.instance.id.as_str()]
    );
}

#[tokio::test]
async fn terminating_an_instance_twice_or_one_that_never_existed_is_done() {
    let f = fixture().await;
    let launched = f
        .cloud
        .launch(&request(
            "default-gone",
            getting_started_nodeclass(CLUSTER),
            vec![on_demand("m5.large", "us-east-1a", 0.1)],
        ))
        .await
        .expect("launch");
    f.cloud.terminate(&launched.instance.id).await.expect("terminate");
    f.cloud
        .terminate(&launched.instance.id)
        .await
        .expect("terminate again");
    f.cloud
        .terminate("i-0123456789abcdef0")
        .await
        .expect("never existed");
    let state = describe(&f.ec2, &launched.instance.id).await;
    assert_eq!(
        state.state().and_then(|s| s.name()).map(|n| n.as_str()),
        Some("terminated")
    );
}

#[tokio::test]
async fn ami_aliases_resolve_per_family_and_architecture_through_the_public_parameters() {
    let f = fixture().await;
    let cases = [
        (
            "al2023@latest",
            "m5.large",
            "/aws/service/eks/optimized-ami/1.32/amazon-linux-2023/x86_64/standard/recommended/image_id",
        ),
        (
            "al2023@latest",
            "m6g.large",
            "/aws/service/eks/optimized-ami/1.32/amazon-linux-2023/arm64/standard/recommended/image_id",
        ),
        (
            "al2023@v20240703",
            "m5.large",
            "/aws/service/eks/optimized-ami/1.32/amazon-linux-2023/x86_64/standard/amazon-eks-node-al2023-x86_64-standard-1.32-v20240703/image_id",
        ),
        (
            "al2023@latest",
            "g4dn.xlarge",
            "/aws/service/eks/optimized-ami/1.32/amazon-linux-2023/x86_64/nvidia/recommended/image_id",
        ),
        (
            "al2@latest",
            "m5.large",
            "/aws/service/eks/optimized-ami/1.32/amazon-linux-2/recommended/image_id",
        ),
        (
            "al2@latest",
            "m6g.large",
            "/aws/service/eks/optimized-ami/1.32/amazon-linux-2-arm64/recommended/image_id",
        ),
        (
            "al2@latest",
            "g4dn.xlarge",
            "/aws/service/eks/optimized-ami/1.32/amazon-linux-2-gpu/recommended/image_id",
        ),
        (
            "bottlerocket@latest",
            "m5.large",
            "/aws/service/bottlerocket/aws-k8s-1.32/x86_64/latest/image_id",
        ),
        (
            "bottlerocket@latest",
            "m6g.large",
            "/aws/service/bottlerocket/aws-k8s-1.32/arm64/latest/image_id",
        ),
        (
            "bottlerocket@v1.20.3",
            "m6g.large",
            "/aws/service/bottlerocket/aws-k8s-1.32/arm64/1.20.3/image_id",
        ),
    ];
    for (i, (alias, instance_type, parameter)) in cases.into_iter().enumerate() {
        let mut nc = getting_started_nodeclass(CLUSTER);
        nc.spec.ami_selector_terms[0].alias = Some(alias.to_string());
        let launched = f
            .cloud
            .launch(&request(
                &format!("default-alias{i}"),
                nc,
                vec![on_demand(instance_type, "us-east-1a", 0.1)],
            ))
            .await
            .unwrap_or_else(|e| panic!("{alias} on {instance_type}: {e}"));
        let image = describe(&f.ec2, &launched.instance.id)
            .await
            .image_id
            .expect("image");
        assert_eq!(
            image,
            ssm_value(&f.moto, parameter).await,
            "{alias} on {instance_type}"
        );
    }
}

#[tokio::test]
async fn ami_selector_terms_pick_the_newest_matching_image() {
    let f = fixture().await;
    let mut nc = getting_started_nodeclass(CLUSTER);
    nc.spec.ami_family = Some("AL2023".into());
    nc.spec.ami_selector_terms = vec![nodewright_core::api::AmiSelectorTerm {
        name: Some("amazon-eks-node-al2023-arm64-standard-1.31-*".into()),
        owner: Some("602401143452".into()),
        ..Default::default()
    }];
    let launched = f
        .cloud
        .launch(&request(
            "default-newest",
            nc,
            vec![on_demand("m6g.large", "us-east-1a", 0.1)],
        ))
        .await
        .expect("launch");
    let image = describe(&f.ec2, &launched.instance.id)
        .await
        .image_id
        .expect("image");
    let newest = ssm_value(
        &f.moto,
        "/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/arm64/standard/recommended/image_id",
    )
    .await;
    assert_eq!(image, newest);
}

#[tokio::test]
async fn selectors_match_subnets_by_id_and_wildcard_tags_and_groups_by_name() {
    let f = fixture().await;
    // A bigger subnet in us-east-1a, tagged with another value of the discovery key.
    let bigger = f
        .ec2
        .create_subnet()
        .vpc_id(&f.network.vpc_id)
        .availability_zone("us-east-1a")
        .cidr_block("10.0.64.0/18")
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Subnet)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("karpenter.sh/discovery")
                        .value("elsewhere")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("subnet")
        .subnet
        .and_then(|s| s.subnet_id)
        .expect("id");

    let mut nc = getting_started_nodeclass(CLUSTER);
    nc.spec.subnet_selector_terms[0]
        .tags
        .insert("karpenter.sh/discovery".into(), "*".into());
    nc.spec.security_group_selector_terms = vec![nodewright_core::api::SecurityGroupSelectorTerm {
        name: Some(format!("{CLUSTER}-nodes")),
        ..Default::default()
    }];
    let launched = f
        .cloud
        .launch(&request(
            "default-wild",
            nc,
            vec![on_demand("m5.large", "us-east-1a", 0.1)],
        ))
        .await
        .expect("launch");
    let instance = describe(&f.ec2, &launched.instance.id).await;
    assert_eq!(
        instance.subnet_id(),
        Some(bigger.as_str()),
        "the subnet with most free addresses"
    );

    let mut nc = getting_started_nodeclass(CLUSTER);
    let c = f.network.subnet_in("us-east-1c").expect("subnet c").id.clone();
    nc.spec.subnet_selector_terms = vec![nodewright_core::api::SelectorTerm {
        id: Some(c.clone()),
        ..Default::default()
    }];
    let launched = f
        .cloud
        .launch(&request(
            "default-byid",
            nc,
            vec![
                on_demand("m5.large", "us-east-1a", 0.1),
                on_demand("m5.large", "us-east-1c", 0.1),
            ],
        ))
        .await
        .expect("launch");
    assert_eq!(
        launched.instance.zone, "us-east-1c",
        "only us-east-1c has a selected subnet"
    );
    assert_eq!(
        describe(&f.ec2, &launched.instance.id).await.subnet_id(),
        Some(c.as_str())
    );
}

#[tokio::test]
async fn an_insufficient_capacity_error_from_create_fleet_names_the_offerings() {
    let f = fixture().await;
    f.moto
        .fail_next("ec2", "CreateFleet", "InsufficientInstanceCapacity", 1);
    let err = f
        .cloud
        .launch(&request(
            "default-noroom",
            getting_started_nodeclass(CLUSTER),
            vec![
                on_demand("m5.large", "us-east-1a", 0.1),
                on_demand("m5.large", "us-east-1b", 0.1),
            ],
        ))
        .await
        .expect_err("no capacity");
    assert_eq!(err.kind, ErrorKind::InsufficientCapacity);
    assert_eq!(
        err.unavailable,
        vec![
            key("m5.large", "us-east-1a", OnDemand),
            key("m5.large", "us-east-1b", OnDemand)
        ]
    );
}

#[tokio::test]
async fn an_override_out_of_capacity_falls_through_to_the_next_and_is_reported_not_remembered() {
    let f = fixture().await;
    let nc = getting_started_nodeclass(CLUSTER);
    let overrides = vec![
        offering("m5.large", "us-east-1a", Spot, 0.03),
        offering("m5a.large", "us-east-1b", Spot, 0.04),
    ];
    f.moto.fleet_errors(&[FleetError::ice("m5.large")], Some(1));
    let launched = f
        .cloud
        .launch(&request("default-ice1", nc.clone(), overrides.clone()))
        .await
        .expect("launch");
    assert_eq!(launched.instance.instance_type, "m5a.large");
    assert_eq!(launched.instance.zone, "us-east-1b");
    assert_eq!(launched.instance.capacity_type, Spot);
    assert_eq!(launched.price, 0.04);
    assert_eq!(launched.unavailable, vec![key("m5.large", "us-east-1a", Spot)]);
    let instance = describe(&f.ec2, &launched.instance.id).await;
    assert_eq!(instance.instance_lifecycle().map(|l| l.as_str()), Some("spot"));

    // The adapter keeps no record of it: skipping it is the core's decision, made when it
    // plans the overrides. The same overrides a moment later ask for it first again.
    f.clock.advance(1);
    let again = f
        .cloud
        .launch(&request("default-ice2", nc, overrides))
        .await
        .expect("launch");
    assert_eq!(again.instance.instance_type, "m5.large");
    assert!(again.unavailable.is_empty());
}

#[tokio::test]
async fn a_fleet_with_every_override_out_of_capacity_is_insufficient_capacity() {
    let f = fixture().await;
    f.moto
        .fleet_errors(&[FleetError::ice("m5.large"), FleetError::ice("c5.large")], None);
    let err = f
        .cloud
        .launch(&request(
            "default-allice",
            getting_started_nodeclass(CLUSTER),
            vec![
                on_demand("m5.large", "us-east-1a", 0.1),
                on_demand("c5.large", "us-east-1b", 0.09),
            ],
        ))
        .await
        .expect_err("no capacity anywhere");
    assert_eq!(err.kind, ErrorKind::InsufficientCapacity);
    assert_eq!(
        err.unavailable,
        vec![
            key("c5.large", "us-east-1b", OnDemand),
            key("m5.large", "us-east-1a", OnDemand)
        ]
    );
    assert!(f.cloud.list_instances().await.expect("list").is_empty());
}

#[tokio::test]
async fn request_limit_exceeded_is_retried_until_the_launch_succeeds() {
    let f = fixture().await;
    f.moto.fail_next("ec2", "CreateFleet", "RequestLimitExceeded", 2);
    let launched = f
        .cloud
        .launch(&request(
            "default-throttled",
            getting_started_nodeclass(CLUSTER),
            vec![on_demand("m5.large", "us-east-1a", 0.1)],
        ))
        .await
        .expect("launch after retries");
    assert_eq!(f.cloud.list_instances().await.expect("list").len(), 1);
    assert_eq!(launched.instance.instance_type, "m5.large");
}

#[tokio::test]
async fn throttling_that_outlasts_the_retries_is_throttled() {
    let f = fixture().await;
    f.moto
        .fail_next("ec2", "DescribeInstances", "RequestLimitExceeded", 10);
    let err = f.cloud.list_instances().await.expect_err("still throttled");
    assert_eq!(err.kind, ErrorKind::Throttled);
    assert!(err.message.contains("RequestLimitExceeded"), "{}", err.message);
}

#[tokio::test]
async fn a_nodeclass_whose_selectors_match_nothing_is_invalid() {
    let f = fixture().await;
    let nc = getting_started_nodeclass("some-other-cluster");
    let err = f
        .cloud
        .launch(&request(
            "default-nosubnet",
            nc,
            vec![on_demand("m5.large", "us-east-1a", 0.1)],
        ))
        .await
        .expect_err("nothing selected");
    assert_eq!(err.kind, ErrorKind::Invalid);
}

#[tokio::test]
async fn launch_templates_are_listed_kept_while_a_claim_records_them_and_deleted_once() {
    use nodewright_core::launch_templates::{GRACE_MS, unused};
    let f = fixture().await;
    let launched = f
        .cloud
        .launch(&request(
            "default-lt",
            getting_started_nodeclass(CLUSTER),
            vec![on_demand("m5.large", "us-east-1a", 0.1)],
        ))
        .await
        .expect("launch");
    let name = launched
        .launch_template
        .clone()
        .expect("the launch names its template");
    let templates = f.cloud.list_launch_templates().await.expect("templates");
    let template = templates
        .iter()
        .find(|t| t.name == name)
        .expect("one of the cluster's");
    // moto does not put EC2's aws:ec2launchtemplate:id tag on fleet instances, so the claim's
    // record is what keeps the template here; on EC2 either keeps it.
    let mut claim = nodewright_core::builders::launched_claim("default-lt", 0);
    claim.disruption.launch_template = Some(name.clone());
    let later = template.created_at + GRACE_MS;
    let listed = f.cloud.list_instances().await.expect("instances");
    assert!(
        unused(&templates, &listed, std::slice::from_ref(&claim), later)
            .iter()
            .all(|t| t.id != template.id)
    );
    f.cloud.terminate(&launched.instance.id).await.expect("terminate");
    let listed = f.cloud.list_instances().await.expect("instances");
    let gone = unused(&templates, &listed, &[], later);
    assert!(gone.iter().any(|t| t.id == template.id), "{gone:?}");
    f.cloud
        .delete_launch_template(&template.id)
        .await
        .expect("deleted");
    f.cloud
        .delete_launch_template(&template.id)
        .await
        .expect("already gone is done");
    let after = f.cloud.list_launch_templates().await.expect("templates");
    assert!(after.iter().all(|t| t.id != template.id), "{after:?}");
    // A launch that wants it again makes it again.
    f.cloud
        .launch(&request(
            "default-lt2",
            getting_started_nodeclass(CLUSTER),
            vec![on_demand("m5.large", "us-east-1a", 0.1)],
        ))
        .await
        .expect("launch after the template was deleted");
}
