//! What the EC2 and DynamoDB ports share: loading the SDK configuration, one error shape for
//! any SDK call, and running a call under a timeout with jittered exponential retries.
//!
//! Credentials, region and endpoint come from the standard AWS sources (`AWS_*` environment
//! variables including `AWS_ENDPOINT_URL`, profiles, SSO, the instance role); the config
//! file's `aws.region` wins over them when set. The SDK's own retries are switched off: every
//! call goes through [`retrying`], so each attempt is bounded, counted and logged the same way.

use std::future::Future;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use backon::{ExponentialBuilder, Retryable};

pub mod moto;

/// Loads the AWS SDK configuration from the standard sources; `region` (from the config
/// file) overrides the environment's region when given.
pub async fn sdk_config(region: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .build(),
        );
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    loader.load().await
}

/// How each AWS call is bounded and retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallPolicy {
    /// Longest one attempt may take.
    pub timeout: Duration,
    /// First retry delay (jittered, doubling).
    pub min_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// Retries after the first attempt.
    pub max_retries: usize,
}

impl Default for CallPolicy {
    /// 20 s per attempt, 4 retries from 200 ms doubling to at most 5 s, jittered.
    fn default() -> Self {
        CallPolicy {
            timeout: Duration::from_secs(20),
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retries: 4,
        }
    }
}

impl CallPolicy {
    /// Millisecond delays, for tests that inject throttling.
    #[must_use]
    pub fn fast() -> Self {
        CallPolicy {
            timeout: Duration::from_secs(10),
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_retries: 3,
        }
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries)
    }
}

/// What kind of failure an SDK call ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiErrorKind {
    /// The service answered with an error code.
    Service,
    /// The attempt did not finish within this long.
    Timeout(Duration),
    /// The request never got an answer (connection refused, reset, DNS).
    Network,
    /// The request could not be built, or the answer could not be read.
    Other,
}

/// One failed SDK call, reduced to what classification needs: the kind, the service's error
/// code (from `ProvideErrorMetadata::code()`), its message and the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The kind of failure.
    pub kind: ApiErrorKind,
    /// The service's error code, such as `InsufficientInstanceCapacity`.
    pub code: Option<String>,
    /// The service's message, or a description of the failure.
    pub message: String,
    /// The HTTP status, when an answer arrived.
    pub status: Option<u16>,
    /// Per-item reasons of a cancelled DynamoDB transaction (`ConditionalCheckFailed`,
    /// `None`, `TransactionConflict`…), in the order of the transaction's items.
    pub reasons: Vec<String>,
}

impl ApiError {
    /// A service error with `code` and `message` (fakes use this to inject errors).
    #[must_use]
    pub fn service(code: &str, message: &str) -> Self {
        let status = if code.contains("Internal") || code.contains("Unavailable") {
            500
        } else {
            400
        };
        ApiError {
            kind: ApiErrorKind::Service,
            code: Some(code.to_owned()),
            message: message.to_owned(),
            status: Some(status),
            reasons: Vec::new(),
        }
    }

    /// A connection failure.
    #[must_use]
    pub fn network(message: &str) -> Self {
        ApiError {
            kind: ApiErrorKind::Network,
            code: None,
            message: message.to_owned(),
            status: None,
            reasons: Vec::new(),
        }
    }

    /// Reduces an SDK error.
    pub fn from_sdk<E>(err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let describe = || DisplayErrorContext(err).to_string();
        match err {
            SdkError::ServiceError(ctx) => {
                let e = ctx.err();
                ApiError {
                    kind: ApiErrorKind::Service,
                    code: e.code().map(str::to_owned),
                    message: e.message().map_or_else(describe, str::to_owned),
                    status: status_of(err),
                    reasons: Vec::new(),
                }
            }
            SdkError::TimeoutError(_) => ApiError {
                kind: ApiErrorKind::Timeout(Duration::ZERO),
                code: None,
                message: describe(),
                status: None,
                reasons: Vec::new(),
            },
            SdkError::DispatchFailure(_) if credentials_missing(err) => {
                ApiError::network(NO_CREDENTIALS)
            }
            SdkError::DispatchFailure(_) => ApiError::network(&describe()),
            SdkError::ResponseError(_) => ApiError {
                kind: ApiErrorKind::Other,
                code: None,
                message: describe(),
                status: status_of(err),
                reasons: Vec::new(),
            },
            _ => ApiError {
                kind: ApiErrorKind::Other,
                code: None,
                message: describe(),
                status: None,
                reasons: Vec::new(),
            },
        }
    }

    /// The error code, or `""`.
    #[must_use]
    pub fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("")
    }

    /// Whether trying again may succeed: throttling, server-side errors, timeouts and
    /// connection failures. Errors about the request itself are not retried.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            ApiErrorKind::Timeout(_) | ApiErrorKind::Network => true,
            ApiErrorKind::Other => self.status.is_some_and(|s| s >= 500),
            ApiErrorKind::Service => {
                let transient_reason = |r: &String| {
                    matches!(
                        r.as_str(),
                        "TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded"
                    )
                };
                is_throttling_code(self.code())
                    || self.reasons.iter().any(transient_reason)
                    || matches!(
                        self.code(),
                        "InternalError"
                            | "InternalFailure"
                            | "InternalServerError"
                            | "ServiceUnavailable"
                            | "Unavailable"
                            | "ServerError"
                    )
                    || self.status.is_some_and(|s| s >= 500)
            }
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.kind, &self.code) {
            (ApiErrorKind::Timeout(d), _) if !d.is_zero() => write!(f, "timed out after {d:?}"),
            (_, Some(code)) => write!(f, "{code}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// What a call says when no credentials were found, in place of the SDK's dump of every
/// provider it tried.
pub const NO_CREDENTIALS: &str = "no AWS credentials found (looked in AWS_ACCESS_KEY_ID and \
     AWS_SECRET_ACCESS_KEY, the profile AWS_PROFILE names in ~/.aws/config and \
     ~/.aws/credentials, AWS_WEB_IDENTITY_TOKEN_FILE, the ECS container endpoint, then the EC2 \
     instance role)";

/// Whether `err` or one of its sources is the provider chain finding no credentials.
fn credentials_missing(err: &(dyn std::error::Error + 'static)) -> bool {
    use aws_credential_types::provider::error::CredentialsError;
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(CredentialsError::CredentialsNotLoaded(_)) =
            e.downcast_ref::<CredentialsError>()
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Whether `code` is one of the throttling codes EC2 or DynamoDB answer with.
#[must_use]
pub fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "RequestLimitExceeded"
            | "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "ProvisionedThroughputExceededException"
            | "RequestThrottled"
            | "SlowDown"
            | "TooManyRequestsException"
    )
}

fn status_of<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// Runs `call` under `policy`: each attempt is bounded by `policy.timeout`, and retryable
/// failures are retried with jittered exponential backoff. `name` names the call in logs.
///
/// # Errors
/// The last attempt's error.
pub async fn retrying<T, F, Fut>(
    policy: &CallPolicy,
    name: &str,
    mut call: F,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let timeout = policy.timeout;
    let attempt = || {
        let fut = call();
        async move {
            match tokio::time::timeout(timeout, fut).await {
                Ok(result) => result,
                Err(_) => Err(ApiError {
                    kind: ApiErrorKind::Timeout(timeout),
                    code: None,
                    message: format!("no answer within {timeout:?}"),
                    status: None,
                    reasons: Vec::new(),
                }),
            }
        }
    };
    attempt
        .retry(policy.backoff())
        .sleep(tokio::time::sleep)
        .when(ApiError::is_retryable)
        .notify(|err: &ApiError, delay: Duration| {
            tracing::warn!(call = name, error = %err, retry_in = ?delay, "AWS call failed; retrying");
        })
        .await
}

/// Reading the JSON examples of `wiki/DevOps-Reference.md`, so tests keep them in step with
/// the code.
#[cfg(test)]
pub(crate) mod doc {
    /// The JSON code block that follows `<!-- marker -->` in the DevOps reference.
    pub(crate) fn json_block(marker: &str) -> serde_json::Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../wiki/DevOps-Reference.md");
        let text = std::fs::read_to_string(path).expect("wiki/DevOps-Reference.md is readable");
        let tag = format!("<!-- {marker} -->");
        let after = text
            .split_once(&tag)
            .map(|(_, rest)| rest)
            .expect("the marker is in the page");
        let body = after
            .split_once("```json")
            .map(|(_, rest)| rest)
            .expect("a json block follows");
        let body = body
            .split_once("```")
            .map(|(json, _)| json)
            .expect("the block is closed");
        serde_json::from_str(body).expect("the block is valid JSON")
    }

    /// Every `Action` named anywhere in `policy`.
    pub(crate) fn actions(policy: &serde_json::Value) -> Vec<String> {
        let mut out = Vec::new();
        collect(policy, &mut out);
        out
    }

    fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("Action", serde_json::Value::String(a)) => out.push(a.clone()),
                        ("Action", serde_json::Value::Array(list)) => {
                            out.extend(list.iter().filter_map(|a| a.as_str().map(str::to_owned)));
                        }
                        _ => collect(v, out),
                    }
                }
            }
            serde_json::Value::Array(list) => list.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn no_credentials_is_one_line_saying_where_they_are_looked_for() {
        use aws_credential_types::provider::error::CredentialsError;
        use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
        use aws_smithy_runtime_api::client::result::ConnectorError;
        let missing = CredentialsError::not_loaded(
            "no credentials found in chain. Attempted:\n  Environment: not set\n  Profile: none",
        );
        let err: SdkError<DescribeTableError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::other(Box::new(missing), None));
        let api = ApiError::from_sdk(&err);
        let text = api.to_string();
        assert_eq!(text, NO_CREDENTIALS);
        assert!(!text.contains('\n'), "{text}");
        assert!(text.starts_with("no AWS credentials found"), "{text}");
        for place in ["AWS_ACCESS_KEY_ID", "AWS_PROFILE", "instance role"] {
            assert!(text.contains(place), "{text}");
        }
        assert_eq!(api.kind, ApiErrorKind::Network);

        // Any other dispatch failure keeps its description.
        let refused: SdkError<DescribeTableError, HttpResponse> = SdkError::dispatch_failure(
            ConnectorError::io(Box::new(std::io::Error::other("connection refused"))),
        );
        assert!(ApiError::from_sdk(&refused)
            .to_string()
            .contains("connection refused"));
    }

    #[tokio::test]
    async fn throttling_is_retried_until_it_passes() {
        let attempts = AtomicUsize::new(0);
        let result = retrying(&CallPolicy::fast(), "Test", || {
            let n = attempts.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(ApiError::service(
                        "RequestLimitExceeded",
                        "Request limit exceeded.",
                    ))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result, Ok(2));
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn errors_about_the_request_are_not_retried() {
        let attempts = AtomicUsize::new(0);
        let result: Result<(), _> = retrying(&CallPolicy::fast(), "Test", || {
            attempts.fetch_add(1, Ordering::SeqCst);
            async {
                Err(ApiError::service(
                    "InvalidAMIID.NotFound",
                    "The image id does not exist",
                ))
            }
        })
        .await;
        assert_eq!(
            result.map_err(|e| e.code().to_owned()),
            Err("InvalidAMIID.NotFound".into())
        );
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn retries_stop_after_the_policy_allows() {
        let attempts = AtomicUsize::new(0);
        let result: Result<(), _> = retrying(&CallPolicy::fast(), "Test", || {
            attempts.fetch_add(1, Ordering::SeqCst);
            async {
                Err(ApiError::service(
                    "InternalError",
                    "An internal error has occurred",
                ))
            }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(
            attempts.load(Ordering::SeqCst),
            1 + CallPolicy::fast().max_retries
        );
    }

    #[tokio::test]
    async fn a_hanging_call_times_out_and_is_retried() {
        let attempts = AtomicUsize::new(0);
        let policy = CallPolicy {
            timeout: Duration::from_millis(50),
            ..CallPolicy::fast()
        };
        let result = retrying(&policy, "Test", || {
            let n = attempts.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                Ok::<_, ApiError>(n)
            }
        })
        .await;
        assert_eq!(result, Ok(1));
    }
}
