//! The one way the demo, the tests and the benchmarks reach moto (the local AWS stand-in that
//! `scripts/with-moto.sh` starts): it checks the environment that script exports and refuses
//! anything that could reach real AWS, then loads the SDK configuration as production does.

use aws_config::SdkConfig;

/// What `scripts/with-moto.sh` exports that is missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MotoError(String);

/// The region every moto test and the demo use.
pub const REGION: &str = "us-east-1";

/// moto's URL, once the environment points the AWS SDK at it and only at it: a loopback
/// `TINQS_TEST_MOTO_URL`, `AWS_ENDPOINT_URL` the same, and the instance metadata address off.
///
/// # Errors
/// [`MotoError`] naming the variable that is missing or wrong.
pub fn url() -> Result<String, MotoError> {
    check(|name| std::env::var(name).ok())
}

/// The SDK configuration for moto ([`url`]'s checks first).
///
/// # Errors
/// As [`url`].
pub async fn config() -> Result<SdkConfig, MotoError> {
    url()?;
    Ok(super::sdk_config(Some(REGION)).await)
}

fn check(var: impl Fn(&str) -> Option<String>) -> Result<String, MotoError> {
    let url = var("TINQS_TEST_MOTO_URL").ok_or_else(|| {
        MotoError(
            "TINQS_TEST_MOTO_URL is not set: run this under scripts/with-moto.sh (`make test`, \
             `make demo`, `make test-aws`), which starts moto and points the AWS SDK at it"
                .into(),
        )
    })?;
    if !url.starts_with("http://127.0.0.1:") {
        return Err(MotoError(format!(
            "TINQS_TEST_MOTO_URL must be a loopback URL (http://127.0.0.1:PORT), got {url}"
        )));
    }
    let endpoint = var("AWS_ENDPOINT_URL").unwrap_or_default();
    if endpoint != url {
        return Err(MotoError(format!(
            "AWS_ENDPOINT_URL ({endpoint:?}) must point at moto ({url}); scripts/with-moto.sh sets both"
        )));
    }
    if var("AWS_EC2_METADATA_DISABLED").as_deref() != Some("true") {
        return Err(MotoError(
            "AWS_EC2_METADATA_DISABLED must be `true` so the AWS SDK never calls the instance \
             metadata address"
                .into(),
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const MOTO: &str = "http://127.0.0.1:5123";

    #[test]
    fn moto_on_loopback_with_the_sdk_pointed_at_it_is_accepted() {
        let vars = env(&[
            ("TINQS_TEST_MOTO_URL", MOTO),
            ("AWS_ENDPOINT_URL", MOTO),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]);
        assert_eq!(check(vars), Ok(MOTO.to_owned()));
    }

    #[test]
    fn anything_that_could_reach_real_aws_is_refused_with_the_variable_named() {
        let cases: [(&[(&str, &str)], &str); 4] = [
            (&[], "TINQS_TEST_MOTO_URL is not set"),
            (
                &[("TINQS_TEST_MOTO_URL", "https://ec2.us-east-1.amazonaws.com")],
                "must be a loopback URL",
            ),
            (
                &[("TINQS_TEST_MOTO_URL", MOTO)],
                "AWS_ENDPOINT_URL (\"\") must point at moto",
            ),
            (
                &[("TINQS_TEST_MOTO_URL", MOTO), ("AWS_ENDPOINT_URL", MOTO)],
                "AWS_EC2_METADATA_DISABLED must be `true`",
            ),
        ];
        for (pairs, want) in cases {
            let err = check(env(pairs)).expect_err("refused");
            assert!(err.to_string().contains(want), "{err} (wanted {want})");
        }
    }
}
