//! The moto launcher itself: seed data, failure injection and the test network, so that a
//! failing adapter test can be told apart from a broken test server.

use nodewright_aws::testing::{FleetError, Moto, SEEDED_KUBERNETES_VERSIONS};

#[tokio::test]
async fn moto_serves_the_public_eks_ami_parameters_pointing_at_describable_images() {
    let moto = Moto::start();
    let config = moto.sdk_config();
    let ssm = aws_sdk_ssm::Client::new(&config);
    let ec2 = aws_sdk_ec2::Client::new(&config);
    for version in SEEDED_KUBERNETES_VERSIONS {
        for (path, arch) in [
            ("amazon-linux-2023/x86_64/standard/recommended", "x86_64"),
            ("amazon-linux-2023/arm64/standard/recommended", "arm64"),
            ("amazon-linux-2/recommended", "x86_64"),
            ("amazon-linux-2-arm64/recommended", "arm64"),
            ("amazon-linux-2-gpu/recommended", "x86_64"),
        ] {
            let name = format!("/aws/service/eks/optimized-ami/{version}/{path}/image_id");
            let image_id = ssm
                .get_parameter()
                .name(&name)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{name}: {e:?}"))
                .parameter
                .and_then(|p| p.value)
                .expect("value");
            let images = ec2
                .describe_images()
                .image_ids(&image_id)
                .send()
                .await
                .expect("describe");
            let image = &images.images()[0];
            assert_eq!(image.architecture().map(|a| a.as_str()), Some(arch), "{name}");
        }
    }
}

#[tokio::test]
async fn moto_fails_the_next_calls_of_an_action_with_the_injected_code() {
    let moto = Moto::start();
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config());
    moto.fail_next("ec2", "DescribeVpcs", "UnauthorizedOperation", 1);
    let err = ec2.describe_vpcs().send().await.expect_err("injected");
    let code = aws_sdk_ec2::error::ProvideErrorMetadata::code(&err);
    assert_eq!(code, Some("UnauthorizedOperation"));
    ec2.describe_vpcs().send().await.expect("only one call fails");

    moto.fail_next("ec2", "DescribeVpcs", "UnauthorizedOperation", 1);
    moto.reset();
    ec2.describe_vpcs()
        .send()
        .await
        .expect("reset forgets injections");
}

#[tokio::test]
async fn moto_network_has_tagged_subnets_in_three_zones_and_a_security_group() {
    let moto = Moto::start();
    let network = moto.create_network("test-cluster").await;
    assert_eq!(network.subnets.len(), 3);
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config());
    let subnets = ec2
        .describe_subnets()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:karpenter.sh/discovery")
                .values("test-cluster")
                .build(),
        )
        .send()
        .await
        .expect("describe subnets");
    assert_eq!(subnets.subnets().len(), 3);
    // Accepted by the control API (exercised for real in the launch tests).
    moto.fleet_errors(&[FleetError::ice("m5.large")], Some(1));
}
