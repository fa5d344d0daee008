//! Test support: moto started from our launcher (`tests/moto/launcher.py`) on a free loopback
//! port (one per test, or [`Moto::shared`] per test binary), SDK configuration pointing at it,
//! failure injection and a tagged test network; and what handler tests read: SQS batches and
//! their failures, the messages on a queue, the lines a handler printed ([`Printed`]).
//!
//! ```no_run
//! # async fn example() {
//! use nodewright_aws::testing::Moto;
//! let moto = Moto::start();
//! let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config());
//! moto.fail_next("ec2", "CreateFleet", "InsufficientInstanceCapacity", 1);
//! let network = moto.create_network("my-cluster").await;
//! # }
//! ```
//!
//! Every `Moto` is its own server process with its own state, killed when the value drops; the
//! launcher also exits when this process dies (it watches its stdin), so nothing is left behind.
//! Injected failures apply to the whole server: tests that inject should own their `Moto`.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
#[cfg(feature = "ec2")]
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use nodewright_core::api::{ConfigObject, Ec2NodeClass, parse_config_object};
use nodewright_core::catalog::CapacityType;
use nodewright_core::ports::LaunchOverride;
use serde_json::json;

use crate::config::{AwsConfig, RetryPolicy};

/// The region the launcher seeds and every test uses.
pub const REGION: &str = "us-east-1";
/// The zones [`Moto::create_network`] puts subnets in.
pub const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
/// Kubernetes versions the launcher seeds AMI parameters for.
pub const SEEDED_KUBERNETES_VERSIONS: [&str; 5] = ["1.30", "1.31", "1.32", "1.33", "1.34"];
/// The AMI releases the launcher seeds, oldest first; the last is `recommended` / `latest`.
pub const SEEDED_AMI_RELEASES: [&str; 2] = ["v20240703", "v20240807"];

const STARTUP_TIMEOUT: Duration = Duration::from_secs(90);

static STARTED: AtomicU32 = AtomicU32::new(0);

/// A moto server for one test (or one test binary).
pub struct Moto {
    child: Child,
    /// Held open so that the launcher's stdin watch fires only when we drop it or die.
    _stdin: Option<ChildStdin>,
    port: u16,
    log: PathBuf,
}

impl fmt::Debug for Moto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Moto")
            .field("endpoint", &self.endpoint())
            .field("pid", &self.child.id())
            .finish()
    }
}

impl Moto {
    /// Starts the launcher with `python3` and waits until it has seeded its data and listens.
    /// Panics with the launcher's stderr if it does not come up.
    pub fn start() -> Moto {
        let launcher = launcher_path();
        let log = std::env::temp_dir().join(format!(
            "nodewright-moto-{}-{}.log",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let stderr = std::fs::File::create(&log).expect("create the moto log file");
        let mut child = Command::new("python3")
            .arg(&launcher)
            .args(["--port", "0", "--exit-with-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", launcher.display()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");

        // Read the handshake on a thread so that a launcher that hangs cannot hang the test.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut port = None;
        let deadline = std::time::Instant::now() + STARTUP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("PORT=") => {
                    port = line["PORT=".len()..].trim().parse::<u16>().ok();
                }
                Ok(line) if line.trim() == "READY" => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "moto launcher did not become ready; its stderr:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        }
        let port = port.expect("the launcher prints PORT= before READY");
        Moto {
            child,
            _stdin: stdin,
            port,
            log,
        }
    }

    /// The moto of this test binary, started on first use: for the tests that inject no
    /// failures, each in its own table, queue or cluster name.
    pub fn shared() -> &'static Moto {
        static SHARED: OnceLock<Moto> = OnceLock::new();
        SHARED.get_or_init(Moto::start)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SDK configuration for moto: static test credentials, us-east-1, moto's endpoint, and
    /// retries with a short backoff so that retry tests take milliseconds.
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "testing", "testing", None, None, "moto",
            )))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(4)
                    .with_initial_backoff(Duration::from_millis(5))
                    .with_max_backoff(Duration::from_millis(50)),
            )
            .build()
    }

    /// Makes the next `count` calls of `action` on `service` (the SigV4 signing name: `ec2`,
    /// `ssm`, `dynamodb`, `sqs`, `pricing`, …) fail with the AWS error `code` and HTTP 400.
    pub fn fail_next(&self, service: &str, action: &str, code: &str, count: u32) {
        self.fail_next_with_status(service, action, code, count, 400);
    }

    /// Like [`Moto::fail_next`] with an HTTP status of choice (e.g. 500 or 503).
    pub fn fail_next_with_status(&self, service: &str, action: &str, code: &str, count: u32, status: u16) {
        self.control(
            "/_nodewright/fail",
            &json!({
                "service": service,
                "action": action,
                "code": code,
                "count": count,
                "status": status,
            }),
        );
    }

    /// Makes CreateFleet skip the overrides that match `errors` and report them in the response's
    /// `errorSet` (the way EC2 reports per-override capacity failures), for the next `count`
    /// calls, or every call until [`Moto::reset`] when `count` is `None`.
    pub fn fleet_errors(&self, errors: &[FleetError], count: Option<u32>) {
        let errors: Vec<_> = errors
            .iter()
            .map(|e| {
                let mut error = json!({
                    "instance_type": e.instance_type,
                    "subnet_id": e.subnet_id,
                    "code": e.code,
                });
                if let Some(message) = &e.message {
                    error["message"] = json!(message);
                }
                error
            })
            .collect();
        let mut body = json!({ "fleet_errors": errors });
        if let Some(count) = count {
            body["count"] = json!(count);
        }
        self.control("/_nodewright/fleet_errors", &body);
    }

    /// Forgets every injected failure; moto's own state is kept.
    pub fn reset(&self) {
        self.control("/_nodewright/reset", &json!({}));
    }

    /// What Lambda gives every function, for a bootstrap run against this server: region and
    /// credentials, with the SDK pointed here through `AWS_ENDPOINT_URL`.
    pub fn lambda_environment(&self) -> Vec<(String, String)> {
        [
            ("AWS_REGION", REGION.to_string()),
            ("AWS_DEFAULT_REGION", REGION.to_string()),
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
            ("AWS_SESSION_TOKEN", "testing".to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("RUST_LOG", "warn".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    #[cfg(feature = "ec2")]
    /// Creates the node role the getting-started EC2NodeClass names
    /// (`KarpenterNodeRole-<cluster>`) or another; one that exists already is kept.
    pub async fn create_node_role(&self, name: &str) {
        let iam = aws_sdk_iam::Client::new(&self.sdk_config());
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        if let Err(e) = iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust)
            .send()
            .await
        {
            let e = crate::errors::from_sdk("CreateRole", e);
            assert_eq!(
                e.kind,
                nodewright_core::ports::ErrorKind::Conflict,
                "create role {name}: {e}"
            );
        }
    }

    #[cfg(feature = "ec2")]
    /// Creates a VPC with one subnet in each of [`ZONES`] and a security group, all tagged
    /// `karpenter.sh/discovery=<cluster>` as Karpenter's getting-started guide does, and the
    /// getting-started node role (its instance profile is nodewright's to make).
    pub async fn create_network(&self, cluster: &str) -> TestNetwork {
        self.create_node_role(&format!("KarpenterNodeRole-{cluster}"))
            .await;
        let ec2 = aws_sdk_ec2::Client::new(&self.sdk_config());
        let discovery = |resource: ResourceType, name: String| {
            TagSpecification::builder()
                .resource_type(resource)
                .tags(
                    Tag::builder()
                        .key("karpenter.sh/discovery")
                        .value(cluster)
                        .build(),
                )
                .tags(Tag::builder().key("Name").value(name).build())
                .build()
        };
        let vpc_id = ec2
            .create_vpc()
            .cidr_block("10.0.0.0/16")
            .tag_specifications(discovery(ResourceType::Vpc, format!("{cluster}-vpc")))
            .send()
            .await
            .expect("create vpc")
            .vpc
            .and_then(|v| v.vpc_id)
            .expect("vpc id");
        let mut subnets = Vec::new();
        for (i, zone) in ZONES.iter().enumerate() {
            let subnet = ec2
                .create_subnet()
                .vpc_id(&vpc_id)
                .availability_zone(*zone)
                .cidr_block(format!("10.0.{}.0/24", i + 1))
                .tag_specifications(discovery(ResourceType::Subnet, format!("{cluster}-{zone}")))
                .send()
                .await
                .expect("create subnet")
                .subnet
                .expect("subnet");
            subnets.push(TestSubnet {
                id: subnet.subnet_id.expect("subnet id"),
                zone: zone.to_string(),
            });
        }
        let security_group_id = ec2
            .create_security_group()
            .vpc_id(&vpc_id)
            .group_name(format!("{cluster}-nodes"))
            .description("nodewright test nodes")
            .tag_specifications(discovery(ResourceType::SecurityGroup, format!("{cluster}-nodes")))
            .send()
            .await
            .expect("create security group")
            .group_id
            .expect("group id");
        TestNetwork {
            cluster: cluster.to_string(),
            vpc_id,
            subnets,
            security_group_id,
        }
    }

    /// Every AWS call moto has received, oldest first, with the wall-clock time it arrived.
    pub fn calls(&self) -> Vec<RecordedCall> {
        let body = self.control("/_nodewright/calls", &json!({}));
        let parsed: serde_json::Value = serde_json::from_str(&body).expect("the launcher answers JSON");
        parsed["calls"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| RecordedCall {
                at_ms: c["at_ms"].as_f64().unwrap_or_default(),
                service: c["service"].as_str().unwrap_or_default().to_string(),
                action: c["action"].as_str().unwrap_or_default().to_string(),
            })
            .collect()
    }

    /// Sends a control request; returns the response body.
    fn control(&self, path: &str, body: &serde_json::Value) -> String {
        let body = body.to_string();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .expect("write to moto");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read from moto");
        let status_line = response.lines().next().unwrap_or_default();
        assert!(
            status_line.contains(" 200 "),
            "moto control call {path} failed: {response}"
        );
        response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default()
    }
}

/// The event Lambda's SQS event source mapping delivers for `bodies` from the queue named
/// `queue`: one record each, with message ids `m-0`, `m-1`, … (a batch response names failed
/// records by these).
pub fn sqs_batch<S: AsRef<str>>(queue: &str, bodies: &[S]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            json!({
                "messageId": format!("m-{i}"),
                "receiptHandle": format!("h-{i}"),
                "body": body.as_ref(),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1796126400000",
                    "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1796126400001"},
                "messageAttributes": {},
                "md5OfBody": "0",
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:{REGION}:123456789012:{queue}"),
                "awsRegion": REGION,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The message ids a handler's SQS batch response names as failed (`batchItemFailures`).
pub fn batch_failures(response: &serde_json::Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .expect("a batch response")
        .iter()
        .map(|f| {
            f["itemIdentifier"]
                .as_str()
                .expect("an item identifier")
                .to_string()
        })
        .collect()
}

/// What a handler printed in place of stdout (its EMF metric lines): share a clone with the
/// handler, then [`Printed::take`] the lines.
#[derive(Debug, Clone, Default)]
pub struct Printed(Arc<Mutex<Vec<u8>>>);

impl Write for Printed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("a writer panicked"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Printed {
    /// The lines printed since the last call, each parsed as JSON; panics unless every line is
    /// whole and JSON.
    pub fn take(&self) -> Vec<serde_json::Value> {
        let bytes = std::mem::take(&mut *self.0.lock().expect("the buffer"));
        let text = String::from_utf8(bytes).expect("UTF-8");
        assert!(text.is_empty() || text.ends_with('\n'), "whole lines: {text:?}");
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}")))
            .collect()
    }
}

#[cfg(feature = "queue")]
/// Every message on the queue at `queue_url`, with its system attributes, received and deleted
/// as a consumer that handled them would.
pub async fn take_messages(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut taken = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return taken;
        }
        for m in messages {
            if let Some(handle) = &m.receipt_handle {
                sqs.delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("delete");
            }
            taken.push(m);
        }
    }
}

/// One AWS call as moto received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedCall {
    /// Milliseconds since the epoch, wall clock.
    pub at_ms: f64,
    /// The SigV4 signing name: `ec2`, `sqs`, `dynamodb`, …
    pub service: String,
    pub action: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// One per-override failure for [`Moto::fleet_errors`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetError {
    pub instance_type: String,
    /// Only overrides in this subnet; every subnet when `None`.
    pub subnet_id: Option<String>,
    pub code: String,
    /// The error's message; moto's default when `None`.
    pub message: Option<String>,
}

impl FleetError {
    /// `InsufficientInstanceCapacity` for every override of the instance type.
    pub fn ice(instance_type: &str) -> FleetError {
        FleetError {
            instance_type: instance_type.to_string(),
            subnet_id: None,
            code: "InsufficientInstanceCapacity".to_string(),
            message: None,
        }
    }

    pub fn in_subnet(mut self, subnet_id: &str) -> FleetError {
        self.subnet_id = Some(subnet_id.to_string());
        self
    }

    pub fn code(mut self, code: &str) -> FleetError {
        self.code = code.to_string();
        self
    }

    pub fn message(mut self, message: &str) -> FleetError {
        self.message = Some(message.to_string());
        self
    }
}

/// What [`Moto::create_network`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestNetwork {
    pub cluster: String,
    pub vpc_id: String,
    /// One per zone of [`ZONES`], in that order.
    pub subnets: Vec<TestSubnet>,
    pub security_group_id: String,
}

impl TestNetwork {
    pub fn subnet_in(&self, zone: &str) -> Option<&TestSubnet> {
        self.subnets.iter().find(|s| s.zone == zone)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSubnet {
    pub id: String,
    pub zone: String,
}

fn launcher_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/moto/launcher.py")
}

/// The EC2NodeClass of Karpenter's getting-started guide (`infra/examples/default-nodepool.yaml`:
/// tag-selected subnets and security groups, `al2023@latest`), for `cluster`.
pub fn getting_started_nodeclass(cluster: &str) -> Ec2NodeClass {
    const EXAMPLE: &str = include_str!("../../../infra/examples/default-nodepool.yaml");
    let yaml = EXAMPLE.replace("my-cluster", cluster);
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&yaml).expect("the example is YAML");
    let doc = documents
        .iter()
        .find(|d| d["kind"] == "EC2NodeClass")
        .expect("the example has an EC2NodeClass");
    match parse_config_object(doc) {
        Ok(ConfigObject::Ec2NodeClass(nc)) => *nc,
        other => panic!("the getting-started EC2NodeClass does not parse: {other:?}"),
    }
}

/// Adapter configuration for a test cluster: a made-up endpoint and CA, Kubernetes 1.32,
/// us-east-1, and retries with millisecond backoff.
pub fn aws_config(cluster: &str) -> AwsConfig {
    AwsConfig {
        cluster_name: cluster.to_string(),
        cluster_endpoint: format!("https://{cluster}.gr7.us-east-1.eks.amazonaws.com"),
        // base64 of "-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n"
        cluster_ca_bundle: "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCnRlc3QKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
            .to_string(),
        service_cidr: "10.100.0.0/16".to_string(),
        cluster_dns_ip: None,
        kubernetes_version: "1.32".to_string(),
        region: REGION.to_string(),
        retry: RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(50),
            attempt_timeout: Duration::from_secs(10),
        },
    }
}

/// One offering for a launch request.
pub fn offering(instance_type: &str, zone: &str, capacity_type: CapacityType, price: f64) -> LaunchOverride {
    LaunchOverride {
        instance_type: instance_type.to_string(),
        zone: zone.to_string(),
        capacity_type,
        price,
    }
}
