//! The AWS checks every service shares: credentials and region, the events queue, and how a
//! probe's refusal becomes a problem with its fix.

use aws_credential_types::provider::ProvideCredentials as _;

use crate::aws::ApiError;
use crate::clock::Clock;
use crate::notices::SqsQueue;

use super::check::{Check, PROBE_TIMEOUT};

/// Where the IAM policy is documented, for fixes.
const POLICY_DOC: &str = "wiki/DevOps-Reference.md#iam-policy-for-the-controller";

/// The events queue (`aws.events_queue_url`) can be read: EC2's notices reach the loop.
pub async fn check_events_queue(queue: &SqsQueue) -> Check {
    const NAME: &str = "events queue";
    match tokio::time::timeout(std::time::Duration::from_secs(10), queue.depth()).await {
        Ok(Ok(n)) => Check::ok(NAME, format!("readable, {n} message(s) waiting")),
        Ok(Err(e)) => Check::problem(
            NAME,
            e,
            "check aws.events_queue_url and that the controller may call sqs:ReceiveMessage, \
             sqs:DeleteMessage and sqs:GetQueueAttributes on it (the SpotWarningQueue statement in DevOps-Reference)",
        ),
        Err(_) => Check::problem(
            NAME,
            "SQS did not answer within 10s",
            "check the network path to SQS and aws.region",
        ),
    }
}

/// The SDK's credential chain yields credentials (never printed), and a region is set;
/// temporary ones say how long they last by `clock`.
pub async fn check_credentials(conf: &aws_config::SdkConfig, clock: &dyn Clock) -> Check {
    let name = "aws credentials";
    let fix = "give the controller AWS credentials the standard way: its instance or task role, \
               AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; see wiki/DevOps-Reference.md";
    let Some(region) = conf.region() else {
        return Check::problem(
            name,
            "no AWS region configured",
            "set aws.region in the configuration, or AWS_REGION",
        );
    };
    let Some(provider) = conf.credentials_provider() else {
        return Check::problem(name, "no credential provider is configured", fix);
    };
    match tokio::time::timeout(PROBE_TIMEOUT, provider.provide_credentials()).await {
        Ok(Ok(c)) => {
            let kind = match c.expiry() {
                Some(at) => {
                    let left = model::Timestamp::from_system(at).since(clock.now());
                    format!("temporary, valid for another {}", model::time::human(left))
                }
                None => "long-term keys".to_owned(),
            };
            Check::ok(name, format!("resolved ({kind}); region {region}"))
        }
        Ok(Err(e)) => Check::problem(
            name,
            format!(
                "no credentials: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&e)
            ),
            fix,
        ),
        Err(_) => Check::problem(name, "resolving credentials did not finish in time", fix),
    }
}

/// An AWS answer to a probe: `Ok` means the call went through.
pub(super) type Probe<T> = Result<T, ApiError>;

pub(super) async fn probe<T>(fut: impl std::future::Future<Output = Probe<T>>) -> Probe<T> {
    match tokio::time::timeout(PROBE_TIMEOUT, fut).await {
        Ok(r) => r,
        Err(_) => Err(ApiError::network(&format!(
            "no answer within {}",
            model::time::human(PROBE_TIMEOUT)
        ))),
    }
}

pub(super) fn is_denied(e: &ApiError) -> bool {
    matches!(
        e.code(),
        "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException"
    )
}

pub(super) fn is_bad_credentials(e: &ApiError) -> bool {
    matches!(
        e.code(),
        "AuthFailure"
            | "InvalidClientTokenId"
            | "UnrecognizedClientException"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "RequestExpired"
    )
}

/// A failed AWS probe as a problem, with the fix for missing permissions, bad credentials or
/// an unreachable endpoint.
pub(super) fn aws_problem(name: &str, action: &str, e: &ApiError) -> Check {
    let fix = if is_denied(e) {
        let decode = if e.message.contains("Encoded authorization failure message") {
            " (`aws sts decode-authorization-message --encoded-message …` shows which statement refused it)"
        } else {
            ""
        };
        format!("grant {action} to the controller's role as in {POLICY_DOC}{decode}")
    } else if is_bad_credentials(e) {
        "the credentials are invalid or expired: renew them, or check the clock of this host"
            .to_owned()
    } else if e.code().is_empty() {
        "check that the AWS endpoint is reachable from this host (network, proxy, AWS_ENDPOINT_URL)"
            .to_owned()
    } else {
        format!("AWS refused {action} with {}; see the message", e.code())
    };
    Check::problem(name, describe(e), fix)
}

pub(super) fn describe(e: &ApiError) -> String {
    if e.code().is_empty() {
        e.message.clone()
    } else {
        format!("{}: {}", e.code(), e.message)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use aws_config::{BehaviorVersion, Region};
    use aws_credential_types::provider::SharedCredentialsProvider;
    use aws_credential_types::Credentials;

    use super::*;
    use crate::clock::ManualClock;
    use crate::cmd::doctor::check::Verdict;

    fn conf(expiry: Option<SystemTime>) -> aws_config::SdkConfig {
        let creds = Credentials::new("AKIDEXAMPLE", "not-a-secret", None, expiry, "test");
        aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(SharedCredentialsProvider::new(creds))
            .build()
    }

    #[tokio::test]
    async fn temporary_credentials_say_how_long_they_last_by_the_controllers_clock() {
        // The clock is a day behind the host's: the time left is counted from the clock.
        let host_now = SystemTime::now();
        let clock = ManualClock::new(model::Timestamp::from_system(
            host_now - Duration::from_secs(24 * 3600),
        ));
        let expiry = host_now + Duration::from_secs(3600);
        let check = check_credentials(&conf(Some(expiry)), &clock).await;
        assert_eq!(check.verdict, Verdict::Ok, "{check:?}");
        assert!(
            check
                .detail
                .starts_with("resolved (temporary, valid for another 1day 1h"),
            "{check:?}"
        );
        assert!(!format!("{check:?}").contains("not-a-secret"));
        let check = check_credentials(&conf(None), &clock).await;
        assert_eq!(
            check.detail, "resolved (long-term keys); region eu-west-1",
            "{check:?}"
        );
    }
}
