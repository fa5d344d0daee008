//! EKS authentication over the wire: the token a configuration source puts on requests, and
//! `DescribeCluster` against a moto server.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_eks::types::VpcConfigRequest;
use base64::Engine;
use nodewright_aws::testing::Moto;
use nodewright_core::ports::{Cluster, ErrorKind};
use nodewright_kube::eks::{TOKEN_REFRESH_AFTER, token};
use nodewright_kube::{ClusterInfo, EksConfigSource, KubeCluster, describe_cluster, describe_cluster_cached};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A self-signed CA certificate (no key kept), base64 PEM as EKS returns it; the test server
/// below speaks plain HTTP, so it is parsed and never used.
const TEST_CA: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJrVENDQVRlZ0F3SUJBZ0lVT1J1TjNOSDNLclRXVk9uQW1KWHZKU2RtQlJFd0NnWUlLb1pJemowRUF3SXcKSFRFYk1Ca0dBMVVFQXd3U2JtOWtaWGR5YVdkb2RDMTBaWE4wTFdOaE1DQVhEVEkyTVRFeU1qRXpNemswTVZvWQpEekl4TWpZeE1ESTVNVE16T1RReFdqQWRNUnN3R1FZRFZRUUREQkp1YjJSbGQzSnBaMmgwTFhSbGMzUXRZMkV3CldUQVRCZ2NxaGtqT1BRSUJCZ2dxaGtqT1BRTUJCd05DQUFSczJ3YVZha0xkaW4yazcxLzFabDNJODQ1ZWc4TXUKSTAwaEptUUhYS2QwVTRuV1ZMY1puRzRzMm9EcmlFWm56ZW4wQUthcXhBTERYMWFScW1RdGdXYXRvMU13VVRBZApCZ05WSFE0RUZnUVUzY3pUYVBYL2tqUzZLcHFQVWt6R2Y4UzBDc013SHdZRFZSMGpCQmd3Rm9BVTNjelRhUFgvCmtqUzZLcHFQVWt6R2Y4UzBDc013RHdZRFZSMFRBUUgvQkFVd0F3RUIvekFLQmdncWhrak9QUVFEQWdOSUFEQkYKQWlFQTF6R2R6RWFpTWgxcWJ3Q2w0NzQxUy9uUHkwS1RBdXNlSTRBWEptM1M4YXdDSURQcnYzTjhYeHFHWGptVAoyYXdwQUlYcnFHRjdvbXJWY1hIdzh6MDdCdWJxCi0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K";

/// 2026-11-22T10:15:30Z
fn signing_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_342_530)
}

fn credentials() -> Credentials {
    Credentials::new("AKIDEXAMPLE", "secret", Some("session".into()), None, "test")
}

/// Answers one request with an empty NodeList and hands back the request's head.
async fn one_request_server() -> (String, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let body = r#"{"kind":"NodeList","apiVersion":"v1","metadata":{},"items":[]}"#;
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(response.as_bytes()).await.expect("write");
        String::from_utf8_lossy(&head).into_owned()
    });
    (url, task)
}

#[tokio::test]
async fn requests_carry_a_bearer_token_signed_for_the_cluster_at_the_clock_time() {
    let (url, request) = one_request_server().await;
    let info = ClusterInfo {
        name: "demo".into(),
        endpoint: url,
        certificate_authority: TEST_CA.into(),
        kubernetes_version: "1.34".into(),
        service_cidr: None,
    };
    let source =
        EksConfigSource::from_parts("us-west-2", SharedCredentialsProvider::new(credentials()), info)
            .with_clock(signing_time);
    let cluster = KubeCluster::from_source(Arc::new(source)).await.expect("cluster");
    assert!(cluster.list_nodes().await.expect("nodes").is_empty());

    let head = request.await.expect("request");
    let bearer = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("authorization")
                .then(|| value.trim().to_string())
        })
        .expect("an Authorization header");
    let expected = token(&credentials(), "us-west-2", "demo", signing_time()).expect("token");
    assert_eq!(bearer, format!("Bearer {expected}"));

    let encoded = expected.strip_prefix("k8s-aws-v1.").expect("prefix");
    let url = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .expect("base64url without padding"),
    )
    .expect("utf-8");
    let url = url::Url::parse(&url).expect("a URL");
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(url.host_str(), Some("sts.us-west-2.amazonaws.com"));
    assert_eq!(q["X-Amz-Date"], "20261122T101530Z");
    assert_eq!(q["X-Amz-Security-Token"], "session");
    assert!(TOKEN_REFRESH_AFTER < Duration::from_secs(15 * 60));
}

async fn create_cluster(eks: &aws_sdk_eks::Client, name: &str) {
    eks.create_cluster()
        .name(name)
        .version("1.34")
        .role_arn("arn:aws:iam::123456789012:role/eks-cluster")
        .resources_vpc_config(
            VpcConfigRequest::builder()
                .subnet_ids("subnet-0123456789abcdef0")
                .build(),
        )
        .send()
        .await
        .expect("CreateCluster");
}

#[tokio::test]
async fn describe_cluster_reads_endpoint_ca_and_version_and_a_missing_cluster_is_not_found() {
    // The project's moto launcher, the one every AWS test starts.
    let moto = Moto::start();
    let eks = aws_sdk_eks::Client::new(&moto.sdk_config());
    create_cluster(&eks, "demo").await;

    let info = describe_cluster(&eks, "demo").await.expect("DescribeCluster");
    assert_eq!(info.name, "demo");
    assert!(info.endpoint.starts_with("https://"), "{}", info.endpoint);
    assert!(!info.certificate_authority.is_empty());
    assert_eq!(info.kubernetes_version, "1.34");

    let err = describe_cluster(&eks, "nope").await.expect_err("no such cluster");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");

    // Cached: the answer survives the cluster's deletion in moto, and a failure is not kept.
    let first = describe_cluster_cached(&eks, "demo").await.expect("first");
    eks.delete_cluster()
        .name("demo")
        .send()
        .await
        .expect("DeleteCluster");
    assert_eq!(
        describe_cluster_cached(&eks, "demo").await.expect("cached"),
        first
    );
    assert_eq!(
        describe_cluster_cached(&eks, "later")
            .await
            .expect_err("absent")
            .kind,
        ErrorKind::NotFound
    );
    create_cluster(&eks, "later").await;
    assert_eq!(
        describe_cluster_cached(&eks, "later")
            .await
            .expect("asked again")
            .name,
        "later"
    );
}
