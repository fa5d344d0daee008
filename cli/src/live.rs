//! Connecting to a live cluster and its AWS side, for every command that reads them (`plan
//! --cluster`, `status`, `history`): from `--cluster/--region/--kubeconfig/--table` to the
//! adapters the Lambda functions use — [`KubeCluster`], [`Ec2Cloud`] and [`DynamoClaimStore`] —
//! and failures turned into what the operator should do next.
//!
//! The SDK is configured as the AWS CLI is (profile, `AWS_REGION`, SSO, `AWS_ENDPOINT_URL`).
//! Without `--kubeconfig` the cluster is found as the provisioner finds it: EKS
//! `DescribeCluster` and a token signed with the caller's credentials.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use nodewright_aws::claims::DynamoClaimStore;
use nodewright_aws::{AwsConfig, Ec2Cloud, RetryPolicy, SystemClock};
use nodewright_core::ports::{Clock, ErrorKind, PortError};
use nodewright_kube::{ClusterInfo, EksConfigSource, KubeCluster};

/// Where the cluster and its claims table are.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// The cluster's name: the EKS cluster, and the stack's `ClusterName`.
    #[arg(long, value_name = "NAME")]
    pub cluster: String,

    /// The AWS region; default: the environment or profile (`AWS_REGION`, `AWS_PROFILE`).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Reach the API server with this kubeconfig (its current context) instead of EKS
    /// `DescribeCluster` and a token from your AWS credentials.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The claims table; default `nodewright-<cluster>-claims`, the stack's.
    #[arg(long, value_name = "TABLE")]
    pub table: Option<String>,
}

/// The adapters for one cluster, connected.
pub struct Live {
    pub name: String,
    pub region: String,
    pub table: String,
    /// The API server's URL.
    pub endpoint: String,
    pub cluster: KubeCluster,
    pub cloud: Ec2Cloud,
    pub store: DynamoClaimStore,
    pub clock: Arc<dyn Clock>,
}

/// A runtime for one command: the adapters are async.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The CLI waits less than a Lambda would: an operator at a terminal would rather see the
/// error than wait a minute for retries.
fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(5),
        attempt_timeout: Duration::from_secs(15),
    }
}

/// The claims table the stack creates for `cluster` (`template.yaml`).
pub fn default_table(cluster: &str) -> String {
    format!("nodewright-{cluster}-claims")
}

impl Live {
    /// Loads the AWS configuration, checks for credentials, reaches the API server (asking it
    /// its version, which also proves the connection) and builds the adapters.
    pub async fn connect(args: &ConnectArgs) -> anyhow::Result<Live> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &args.region {
            loader = loader.region(Region::new(region.clone()));
        }
        let sdk = loader.load().await;
        let region = sdk.region().map(|r| r.to_string()).ok_or_else(|| {
            anyhow!("no AWS region: pass --region, or set AWS_REGION or a region in your AWS profile")
        })?;
        check_credentials(&sdk).await?;

        let (cluster, info) = match &args.kubeconfig {
            Some(path) => from_kubeconfig(path, &args.cluster).await?,
            None => from_eks(&sdk, &args.cluster, &region).await?,
        };
        let endpoint = info.endpoint.clone();
        let version = server_version(&cluster)
            .await
            .map_err(|e| explain_kube(e, &endpoint, args.kubeconfig.is_some()))?;
        let kubernetes_version = if info.kubernetes_version.is_empty() {
            version
        } else {
            info.kubernetes_version.clone()
        };

        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let retry = retry_policy();
        let aws = AwsConfig {
            cluster_name: args.cluster.clone(),
            cluster_endpoint: endpoint.clone(),
            cluster_ca_bundle: info.certificate_authority.clone(),
            // Only launches' user data needs the service CIDR, and these commands launch
            // nothing; EKS's default stands in when DescribeCluster was not asked.
            service_cidr: info
                .service_cidr
                .clone()
                .unwrap_or_else(|| "10.100.0.0/16".to_string()),
            cluster_dns_ip: None,
            kubernetes_version,
            region: region.clone(),
            retry,
        };
        let cloud = Ec2Cloud::new(&sdk, aws, clock.clone());
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .retry_config(retry.sdk())
                .timeout_config(retry.timeouts())
                .build(),
        );
        let table = args.table.clone().unwrap_or_else(|| default_table(&args.cluster));
        let store = DynamoClaimStore::new(dynamodb, &table, &args.cluster, clock.clone());
        Ok(Live {
            name: args.cluster.clone(),
            region,
            table,
            endpoint,
            cluster,
            cloud,
            store,
            clock,
        })
    }

    /// A port's failure as the operator should read it: what failed, and what to do next.
    pub fn explain(&self, e: PortError) -> anyhow::Error {
        if kube_error(&e).is_some() {
            return explain_kube(e, &self.endpoint, false);
        }
        let message = e.message.clone();
        match e.kind {
            ErrorKind::NotFound if message.starts_with("dynamodb") => anyhow!(
                "{message}\nthe claims table {} was not found in {}: pass --table, or check --region and that the nodewright stack of cluster {} is deployed",
                self.table,
                self.region,
                self.name
            ),
            ErrorKind::Unauthorized => anyhow!(
                "{message}\nAWS refused the request: check that your credentials are current (`aws sts get-caller-identity`) and that your identity may read {} (dynamodb:Query) and describe EC2 in {}",
                self.table,
                self.region
            ),
            ErrorKind::Unavailable | ErrorKind::Throttled => {
                anyhow!("{message}\nAWS did not answer in time; try again")
            }
            _ => anyhow::Error::new(e),
        }
    }
}

/// Fails early, and says how to fix it, when no credentials can be found: the SDK's own error
/// would come later, from whichever call happened to be first.
async fn check_credentials(sdk: &SdkConfig) -> anyhow::Result<()> {
    use aws_credential_types::provider::ProvideCredentials as _;
    let advice = "set AWS_PROFILE (and run `aws sso login` for an SSO profile), run `aws configure`, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";
    let Some(provider) = sdk.credentials_provider() else {
        return Err(anyhow!("no AWS credentials: {advice}"));
    };
    provider
        .provide_credentials()
        .await
        .map(|_| ())
        .map_err(|e| anyhow!("no AWS credentials ({e}): {advice}"))
}

/// The cluster through a kubeconfig file's current context.
async fn from_kubeconfig(path: &std::path::Path, name: &str) -> anyhow::Result<(KubeCluster, ClusterInfo)> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .with_context(|| format!("the kubeconfig {} has no usable current context", path.display()))?;
    let endpoint = config.cluster_url.to_string();
    let cluster = KubeCluster::from_config(config).map_err(anyhow::Error::new)?;
    let info = ClusterInfo {
        name: name.to_string(),
        endpoint: endpoint.trim_end_matches('/').to_string(),
        certificate_authority: String::new(),
        // Asked of the API server once connected.
        kubernetes_version: String::new(),
        service_cidr: None,
    };
    Ok((cluster, info))
}

/// The cluster as the provisioner reaches it: DescribeCluster, then tokens signed with the
/// caller's credentials, renewed before they expire.
async fn from_eks(sdk: &SdkConfig, name: &str, region: &str) -> anyhow::Result<(KubeCluster, ClusterInfo)> {
    let eks = aws_sdk_eks::Client::new(sdk);
    let info = nodewright_kube::describe_cluster(&eks, name)
        .await
        .map_err(|e| match e.kind {
            ErrorKind::NotFound => anyhow!(
                "{}\nno EKS cluster {name} in {region}: check --cluster and --region, or pass --kubeconfig",
                e.message
            ),
            ErrorKind::Unauthorized => anyhow!(
                "{}\nyour AWS identity may not describe the cluster (eks:DescribeCluster); pass --kubeconfig to reach it another way",
                e.message
            ),
            _ => anyhow::Error::new(e),
        })?;
    let source = EksConfigSource::new(sdk, info.clone()).map_err(anyhow::Error::new)?;
    let cluster = KubeCluster::from_source(Arc::new(source))
        .await
        .map_err(anyhow::Error::new)?;
    Ok((cluster, info))
}

/// `1.34` from the API server's `/version` (EKS says `"34+"` for the minor).
async fn server_version(cluster: &KubeCluster) -> Result<String, PortError> {
    let client = cluster.client().await?;
    let info = client
        .apiserver_version()
        .await
        .map_err(|e| nodewright_kube::errors::from_kube("get the server version (/version)", e))?;
    let minor: String = info.minor.chars().take_while(char::is_ascii_digit).collect();
    Ok(format!("{}.{minor}", info.major))
}

fn kube_error(e: &PortError) -> Option<&kube::Error> {
    e.source.as_deref()?.downcast_ref::<kube::Error>()
}

/// A Kubernetes API failure, with the verb and resource it was refused for when RBAC refused.
fn explain_kube(e: PortError, endpoint: &str, with_kubeconfig: bool) -> anyhow::Error {
    let message = e.message.clone();
    // The adapter names each call `<verb> [what] <resource>: <error>`.
    let what = message.split(": ").next().unwrap_or_default();
    let verb = what.split_whitespace().next().unwrap_or("use");
    let resource = what.split_whitespace().last().unwrap_or("the API");
    match kube_error(&e) {
        Some(kube::Error::Api(status)) if status.code == 403 => anyhow!(
            "{message}\nthe Kubernetes API at {endpoint} forbids you to {verb} {resource}: your identity needs `{verb}` on `{resource}` (check with `kubectl auth can-i {verb} {resource} --all-namespaces`); grant it with a ClusterRole like those in infra/rbac.yaml, bound to your user or group (for EKS, the group of your access entry)"
        ),
        Some(kube::Error::Api(status)) if status.code == 401 => anyhow!(
            "{message}\nthe Kubernetes API at {endpoint} did not accept your credentials: {}",
            if with_kubeconfig {
                "refresh the kubeconfig's credentials"
            } else {
                "check that your AWS identity has an EKS access entry for the cluster, and that your credentials are current"
            }
        ),
        Some(kube::Error::Api(_)) => anyhow::Error::new(e),
        Some(_) => anyhow!(
            "{message}\ncannot reach the Kubernetes API at {endpoint}: check that it is reachable from here (a private endpoint needs the VPC or a VPN){}",
            if with_kubeconfig {
                " and that the kubeconfig points at the right cluster"
            } else {
                ", or pass --kubeconfig"
            }
        ),
        None => anyhow::Error::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_table_is_the_stacks() {
        assert_eq!(default_table("prod"), "nodewright-prod-claims");
    }
}
