//! EKS authentication: the bearer token `aws eks get-token` makes, and the cluster's endpoint
//! and CA from `eks:DescribeCluster`.
//!
//! The token is a presigned STS `GetCallerIdentity` URL whose signed headers include
//! `x-k8s-aws-id: <cluster>`, base64url-encoded without padding behind `k8s-aws-v1.`. The API
//! server's authenticator calls STS with it to learn who we are. Presigned for 60 seconds, as
//! the CLI does; EKS accepts a token for 15 minutes after its signing time, so clients are
//! rebuilt with a fresh token after [`TOKEN_REFRESH_AFTER`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_eks::error::ProvideErrorMetadata;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine;
use kube::config::{
    AuthInfo, Cluster as KubeconfigCluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo,
    NamedCluster, NamedContext,
};
use nodewright_core::ports::{ErrorKind, PortError, PortResult};

use crate::cluster::ConfigSource;

/// Tokens are good for 15 minutes; renew well before.
pub const TOKEN_REFRESH_AFTER: Duration = Duration::from_secs(10 * 60);
const PRESIGN_EXPIRES: Duration = Duration::from_secs(60);
const TOKEN_PREFIX: &str = "k8s-aws-v1.";
const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";

/// A bearer token for `cluster`, signed with `credentials` for STS in `region` at `now`.
pub fn token(credentials: &Credentials, region: &str, cluster: &str, now: SystemTime) -> PortResult<String> {
    let host = format!("sts.{region}.amazonaws.com");
    let url = format!("https://{host}/?Action=GetCallerIdentity&Version=2011-06-15");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_EXPIRES);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| invalid("EKS token signing parameters", e))?
        .into();
    let headers = [("host", host.as_str()), (CLUSTER_ID_HEADER, cluster)];
    let signable = SignableRequest::new("GET", &url, headers.into_iter(), SignableBody::Bytes(&[]))
        .map_err(|e| invalid("EKS token request", e))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| invalid("EKS token signature", e))?
        .into_parts();
    let mut request = http::Request::get(&url)
        .body(())
        .map_err(|e| invalid("EKS token URL", e))?;
    instructions.apply_to_request_http1x(&mut request);
    let presigned = request.uri().to_string();
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(presigned)
    ))
}

fn invalid(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> PortError {
    PortError::new(ErrorKind::Invalid, format!("{what}: {e}")).with_source(e)
}

/// What `DescribeCluster` says about the cluster that the adapters need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    pub name: String,
    pub endpoint: String,
    /// Base64-encoded PEM, as EKS returns it.
    pub certificate_authority: String,
    pub kubernetes_version: String,
    pub service_cidr: Option<String>,
}

/// Calls `eks:DescribeCluster`.
pub async fn describe_cluster(eks: &aws_sdk_eks::Client, name: &str) -> PortResult<ClusterInfo> {
    let out = eks.describe_cluster().name(name).send().await.map_err(|e| {
        // Access and throttling errors are not modelled by EKS; their codes tell them apart.
        let kind = match e.code() {
            Some("ResourceNotFoundException") => ErrorKind::NotFound,
            Some(
                "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidClientTokenId"
                | "ExpiredTokenException"
                | "InvalidSignatureException",
            ) => ErrorKind::Unauthorized,
            Some("ThrottlingException" | "TooManyRequestsException") => ErrorKind::Throttled,
            Some("ServerException" | "ServiceUnavailableException") | None => ErrorKind::Unavailable,
            Some(_) => ErrorKind::Invalid,
        };
        let detail = e.message().map(str::to_string).unwrap_or_else(|| e.to_string());
        PortError::new(kind, format!("DescribeCluster {name}: {detail}")).with_source(e)
    })?;
    let cluster = out
        .cluster
        .ok_or_else(|| PortError::new(ErrorKind::NotFound, format!("DescribeCluster {name}: no cluster")))?;
    let missing =
        |field: &str| PortError::new(ErrorKind::Invalid, format!("cluster {name} has no {field} yet"));
    Ok(ClusterInfo {
        name: name.to_string(),
        endpoint: cluster.endpoint.clone().ok_or_else(|| missing("endpoint"))?,
        certificate_authority: cluster
            .certificate_authority
            .as_ref()
            .and_then(|c| c.data.clone())
            .ok_or_else(|| missing("certificate authority"))?,
        kubernetes_version: cluster.version.clone().ok_or_else(|| missing("version"))?,
        service_cidr: cluster.kubernetes_network_config.as_ref().and_then(|n| {
            n.service_ipv4_cidr
                .clone()
                .or_else(|| n.service_ipv6_cidr.clone())
        }),
    })
}

/// [`describe_cluster`], answered from memory after the first success for a cluster name and
/// region: the endpoint and CA do not change while a Lambda sandbox lives. Failures are not
/// kept, so the next call asks again.
pub async fn describe_cluster_cached(eks: &aws_sdk_eks::Client, name: &str) -> PortResult<ClusterInfo> {
    static CACHE: OnceLock<Mutex<HashMap<(String, String), ClusterInfo>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let region = eks.config().region().map(|r| r.to_string()).unwrap_or_default();
    let key = (region, name.to_string());
    // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
    if let Some(info) = cache.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
        return Ok(info.clone());
    }
    // Not held across the call: two concurrent first calls both describe, which is harmless.
    let info = describe_cluster(eks, name).await?;
    cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, info.clone());
    Ok(info)
}

/// Connection settings for an EKS cluster: endpoint and CA fetched once (per cold start), a
/// new token each time a configuration is asked for.
pub struct EksConfigSource {
    region: String,
    credentials: SharedCredentialsProvider,
    info: ClusterInfo,
    /// The signing time; the system clock except in tests.
    now: Arc<dyn Fn() -> SystemTime + Send + Sync>,
}

impl std::fmt::Debug for EksConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EksConfigSource")
            .field("cluster", &self.info.name)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl EksConfigSource {
    /// Signs with the SDK configuration's credentials provider, for STS in its region.
    pub fn new(sdk: &SdkConfig, info: ClusterInfo) -> PortResult<Self> {
        let credentials = sdk
            .credentials_provider()
            .ok_or_else(|| PortError::new(ErrorKind::Unauthorized, "no AWS credentials provider"))?;
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| PortError::new(ErrorKind::Invalid, "no AWS region"))?;
        Ok(EksConfigSource::from_parts(region, credentials, info))
    }

    /// Signs with `credentials` for STS in `region`.
    pub fn from_parts(
        region: impl Into<String>,
        credentials: SharedCredentialsProvider,
        info: ClusterInfo,
    ) -> Self {
        EksConfigSource {
            region: region.into(),
            credentials,
            info,
            now: Arc::new(SystemTime::now),
        }
    }

    /// Signs tokens at the time `now` gives (tests fix it).
    pub fn with_clock(mut self, now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.now = Arc::new(now);
        self
    }

    /// Describes the cluster once per process (a Lambda cold start) and keeps the answer.
    pub async fn discover(sdk: &SdkConfig, cluster: &str) -> PortResult<Arc<Self>> {
        let eks = aws_sdk_eks::Client::new(sdk);
        let info = describe_cluster_cached(&eks, cluster).await?;
        Ok(Arc::new(EksConfigSource::new(sdk, info)?))
    }

    pub fn info(&self) -> &ClusterInfo {
        &self.info
    }

    async fn fresh_config(&self) -> PortResult<kube::Config> {
        let credentials = self.credentials.provide_credentials().await.map_err(|e| {
            PortError::new(ErrorKind::Unauthorized, format!("AWS credentials: {e}")).with_source(e)
        })?;
        let token = token(&credentials, &self.region, &self.info.name, (self.now)())?;
        config_for(&self.info.endpoint, &self.info.certificate_authority, &token).await
    }
}

impl ConfigSource for EksConfigSource {
    fn config(&self) -> Pin<Box<dyn Future<Output = PortResult<kube::Config>> + Send + '_>> {
        Box::pin(self.fresh_config())
    }

    fn valid_for(&self) -> Option<Duration> {
        Some(TOKEN_REFRESH_AFTER)
    }
}

/// Why the bearer token may not be sent to `endpoint`, if it may not: only over https, since
/// the token is the functions' identity in the cluster. Plain http is allowed to a loopback
/// address alone, where nothing leaves the host (local runs and tests).
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let url = url::Url::parse(endpoint).map_err(|e| format!("{endpoint:?} is not a URL: {e}"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Domain(name)) => name == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                Err(format!(
                    "{endpoint:?} is plain http: the cluster endpoint must be https (http only to a loopback address)"
                ))
            }
        }
        other => Err(format!("{endpoint:?} is a {other}: URL, not https")),
    }
}

/// A kube configuration for `endpoint` trusting the base64 PEM `ca`, with a bearer token.
/// Refuses an endpoint [`check_endpoint`] refuses.
pub async fn config_for(endpoint: &str, ca: &str, token: &str) -> PortResult<kube::Config> {
    check_endpoint(endpoint).map_err(|reason| PortError::new(ErrorKind::Invalid, reason))?;
    let kubeconfig = Kubeconfig {
        clusters: vec![NamedCluster {
            name: "eks".to_string(),
            cluster: Some(KubeconfigCluster {
                server: Some(endpoint.to_string()),
                certificate_authority_data: Some(ca.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: "nodewright".to_string(),
            auth_info: Some(AuthInfo {
                token: Some(token.to_string().into()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: "eks".to_string(),
            context: Some(Context {
                cluster: "eks".to_string(),
                user: Some("nodewright".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some("eks".to_string()),
        ..Default::default()
    };
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| PortError::new(ErrorKind::Invalid, format!("cluster configuration: {e}")).with_source(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn decode(token: &str) -> url::Url {
        let encoded = token.strip_prefix(TOKEN_PREFIX).expect("prefix");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .expect("base64url without padding");
        url::Url::parse(&String::from_utf8(bytes).expect("utf-8")).expect("a URL")
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn the_token_goes_only_to_https_or_to_this_host() {
        assert!(check_endpoint("https://ABCD.gr7.us-east-1.eks.amazonaws.com").is_ok());
        assert!(check_endpoint("http://127.0.0.1:6443").is_ok());
        assert!(check_endpoint("http://localhost:8080").is_ok());
        assert!(check_endpoint("http://[::1]:6443").is_ok());
        let refused = check_endpoint("http://ABCD.gr7.us-east-1.eks.amazonaws.com").expect_err("plain http");
        assert!(refused.contains("must be https"), "{refused}");
        assert!(check_endpoint("http://10.0.0.1:6443").is_err());
        assert!(check_endpoint("ftp://127.0.0.1").is_err());
        assert!(check_endpoint("not a url").is_err());
    }

    #[test]
    fn the_token_is_a_presigned_get_caller_identity_url_naming_the_cluster() {
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        // 2026-11-22T10:15:30Z
        let token = token(&credentials, "us-west-2", "demo", at(1_795_342_530)).expect("token");
        let url = decode(&token);
        assert_eq!(url.host_str(), Some("sts.us-west-2.amazonaws.com"));
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["Action"], "GetCallerIdentity");
        assert_eq!(q["Version"], "2011-06-15");
        assert_eq!(q["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(q["X-Amz-Expires"], "60");
        assert_eq!(q["X-Amz-Date"], "20261122T101530Z");
        assert_eq!(
            q["X-Amz-Credential"],
            "AKIDEXAMPLE/20261122/us-west-2/sts/aws4_request"
        );
        let signed: Vec<&str> = q["X-Amz-SignedHeaders"].split(';').collect();
        assert!(
            signed.contains(&"host") && signed.contains(&"x-k8s-aws-id"),
            "{signed:?}"
        );
        assert_eq!(q["X-Amz-Signature"].len(), 64);
    }

    #[test]
    fn the_token_signs_exactly_what_botocore_signs_for_aws_eks_get_token() {
        // Reference URL from botocore 1.43's SigV4QueryAuth (the signer `aws eks get-token`
        // uses) for the same credentials, region, cluster header, time and 60 s expiry.
        const BOTOCORE: &str = "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity\
            &Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256\
            &X-Amz-Credential=AKIDEXAMPLE%2F20261122%2Fus-west-2%2Fsts%2Faws4_request\
            &X-Amz-Date=20261122T101530Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id\
            &X-Amz-Signature=dd69cda0a7ac27aa66e5dc79b555218f7aca2556324e378b6c2f29f60cb51810";
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let token = token(&credentials, "us-west-2", "demo", at(1_795_342_530)).expect("token");
        let encoded = token.strip_prefix(TOKEN_PREFIX).expect("prefix");
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .expect("base64url without padding");
        assert_eq!(String::from_utf8(url).expect("utf-8"), BOTOCORE);
        assert!(!token.ends_with('='), "no padding");
    }

    #[test]
    fn the_token_is_deterministic_and_depends_on_cluster_time_and_key() {
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let a = token(&credentials, "us-east-1", "demo", at(1_795_342_530)).expect("token");
        assert_eq!(
            a,
            token(&credentials, "us-east-1", "demo", at(1_795_342_530)).expect("token")
        );
        assert_ne!(
            a,
            token(&credentials, "us-east-1", "other", at(1_795_342_530)).expect("token")
        );
        assert_ne!(
            a,
            token(&credentials, "us-east-1", "demo", at(1_795_342_531)).expect("token")
        );
        let other_key = Credentials::new("AKIDEXAMPLE", "other", None, None, "test");
        assert_ne!(
            a,
            token(&other_key, "us-east-1", "demo", at(1_795_342_530)).expect("token")
        );
    }

    #[test]
    fn a_session_token_is_carried_in_the_url() {
        let credentials = Credentials::new(
            "ASIAEXAMPLE",
            "secret",
            Some("session/token+=".into()),
            None,
            "test",
        );
        let url = decode(&token(&credentials, "us-east-1", "demo", at(1_795_342_530)).expect("token"));
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["X-Amz-Security-Token"], "session/token+=");
    }
}
