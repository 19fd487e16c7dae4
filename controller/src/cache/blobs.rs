//! [`Blobs`]: the few S3 calls the cache makes, over `aws-sdk-s3`. Chunk uploads and downloads
//! stream: a request body goes to S3 as it arrives, an object's body to the client as it comes.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use axum::body::{Body, Bytes};
use futures::Stream;
use parking_lot::Mutex;

use crate::aws::{retrying, ApiError, CallPolicy};

/// Every IAM action the cache calls on its bucket (`s3:ListBucket` on the bucket itself, the
/// others on its objects under the prefix).
pub const IAM_ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:ListBucket",
];

/// Largest metadata object read whole (entries and statistics are far smaller).
pub const MAX_SMALL_OBJECT: usize = 4 << 20;

/// An S3 failure, without the request's body or credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// The object does not exist.
    #[error("no such object")]
    NotFound,
    /// The request body ended early, was longer than announced, or could not be read.
    #[error("the upload did not deliver the bytes it announced: {0}")]
    BadBody(String),
    /// S3 failed or could not be reached.
    #[error("S3: {0}")]
    Unavailable(String),
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written (milliseconds since the epoch).
    pub modified_ms: i64,
}

/// The cache's bucket.
#[derive(Debug, Clone)]
pub struct Blobs {
    client: aws_sdk_s3::Client,
    bucket: String,
    policy: CallPolicy,
}

fn classify(e: &ApiError) -> BlobError {
    match e.code() {
        "NoSuchKey" | "NotFound" => BlobError::NotFound,
        _ if e.status == Some(404) => BlobError::NotFound,
        _ => BlobError::Unavailable(e.to_string()),
    }
}

impl Blobs {
    /// The bucket `bucket` through `client`.
    #[must_use]
    pub fn new(client: aws_sdk_s3::Client, bucket: &str) -> Self {
        Blobs {
            client,
            bucket: bucket.to_owned(),
            policy: CallPolicy::default(),
        }
    }

    /// From the shared SDK configuration. Path-style addressing, so a custom endpoint (a
    /// test's moto, a VPC endpoint) works with any bucket name.
    #[must_use]
    pub fn from_conf(conf: &aws_config::SdkConfig, bucket: &str) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(true)
            .build();
        Self::new(aws_sdk_s3::Client::from_conf(s3), bucket)
    }

    /// The bucket's name.
    #[must_use]
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The underlying client.
    #[must_use]
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// Writes a small object.
    ///
    /// # Errors
    /// When S3 refuses or is unreachable.
    pub async fn put_small(&self, key: &str, bytes: Vec<u8>) -> Result<(), BlobError> {
        retrying(&self.policy, "PutObject", || {
            let req = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_type("application/json")
                .body(ByteStream::from(bytes.clone()))
                .send();
            async move { req.await.map(|_| ()).map_err(|e| ApiError::from_sdk(&e)) }
        })
        .await
        .map_err(|e| classify(&e))
    }

    /// Reads a small object whole; `None` when it does not exist.
    ///
    /// # Errors
    /// When S3 fails, or the object is larger than [`MAX_SMALL_OBJECT`].
    pub async fn get_small(&self, key: &str) -> Result<Option<Vec<u8>>, BlobError> {
        let got = retrying(&self.policy, "GetObject", || {
            let req = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send();
            async move {
                let out = req.await.map_err(|e| ApiError::from_sdk(&e))?;
                let len = out.content_length().unwrap_or(0);
                if usize::try_from(len).map_or(true, |l| l > MAX_SMALL_OBJECT) {
                    return Err(ApiError::service("TooLarge", "metadata object too large"));
                }
                out.body
                    .collect()
                    .await
                    .map(|b| b.to_vec())
                    .map_err(|e| ApiError::network(&e.to_string()))
            }
        })
        .await;
        match got {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) => match classify(&e) {
                BlobError::NotFound => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Streams `body` into the object `key`: exactly `len` bytes, counted into `counted` as
    /// they pass. Not retried (the body is read once); the client retries the request.
    ///
    /// # Errors
    /// [`BlobError::BadBody`] when the body is shorter or longer than `len` or breaks off;
    /// [`BlobError::Unavailable`] when S3 fails.
    pub async fn put_stream(
        &self,
        key: &str,
        body: Body,
        len: u64,
        counted: Arc<AtomicU64>,
    ) -> Result<(), BlobError> {
        let seen = Arc::new(AtomicU64::new(0));
        let wrapped = CountingBody {
            inner: Mutex::new(body),
            seen: Arc::clone(&seen),
            counted,
        };
        let length = i64::try_from(len).map_err(|_| BlobError::BadBody("too long".into()))?;
        let sent = tokio::time::timeout(
            UPLOAD_TIMEOUT,
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .content_length(length)
                .content_type("application/octet-stream")
                .body(ByteStream::from_body_1_x(wrapped))
                .send(),
        )
        .await;
        let got = seen.load(Ordering::Relaxed);
        match sent {
            Err(_) => Err(BlobError::BadBody(format!(
                "not received within {}",
                humantime::format_duration(UPLOAD_TIMEOUT)
            ))),
            Ok(Ok(_)) if got == len => Ok(()),
            Ok(Ok(_)) => Err(BlobError::BadBody(format!(
                "{got} bytes arrived, {len} announced"
            ))),
            Ok(Err(e)) if got != len => Err(BlobError::BadBody(format!(
                "{got} bytes arrived, {len} announced ({})",
                ApiError::from_sdk(&e)
            ))),
            Ok(Err(e)) => Err(classify(&ApiError::from_sdk(&e))),
        }
    }

    /// Bytes `first ..= last` of `key`, as a stream that reads S3 as it is polled.
    ///
    /// # Errors
    /// When the object is missing or S3 fails before the body starts.
    pub async fn get_range(
        &self,
        key: &str,
        first: u64,
        last: u64,
    ) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static, BlobError> {
        let out = retrying(&self.policy, "GetObject", || {
            let req = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .range(format!("bytes={first}-{last}"))
                .send();
            async move { req.await.map_err(|e| ApiError::from_sdk(&e)) }
        })
        .await
        .map_err(|e| classify(&e))?;
        Ok(byte_stream(out.body))
    }

    /// Every object under `prefix`, all pages.
    ///
    /// # Errors
    /// When a page cannot be read (the list is then incomplete).
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>, BlobError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = retrying(&self.policy, "ListObjectsV2", || {
                let req = self
                    .client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(prefix)
                    .set_continuation_token(token.clone())
                    .send();
                async move { req.await.map_err(|e| ApiError::from_sdk(&e)) }
            })
            .await
            .map_err(|e| classify(&e))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                out.push(Listed {
                    key: key.to_owned(),
                    size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    modified_ms: o
                        .last_modified()
                        .and_then(|t| t.to_millis().ok())
                        .unwrap_or(0),
                });
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// Deletes `keys` (1,000 per request); keys already gone are fine.
    ///
    /// # Errors
    /// When a request fails.
    pub async fn delete(&self, keys: &[String]) -> Result<(), BlobError> {
        for batch in keys.chunks(1000) {
            let objects: Vec<ObjectIdentifier> = batch
                .iter()
                .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
                .collect();
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| BlobError::Unavailable(e.to_string()))?;
            retrying(&self.policy, "DeleteObjects", || {
                let req = self
                    .client
                    .delete_objects()
                    .bucket(&self.bucket)
                    .delete(delete.clone())
                    .send();
                async move { req.await.map(|_| ()).map_err(|e| ApiError::from_sdk(&e)) }
            })
            .await
            .map_err(|e| classify(&e))?;
        }
        Ok(())
    }

    /// Creates the bucket if it does not exist (tests and the demo; deployments create it
    /// with its lifecycle rule, see `wiki/DevOps-Reference.md`).
    ///
    /// # Errors
    /// When S3 refuses.
    pub async fn ensure_bucket(&self) -> Result<(), BlobError> {
        match self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = ApiError::from_sdk(&e);
                if matches!(e.code(), "BucketAlreadyOwnedByYou" | "BucketAlreadyExists") {
                    Ok(())
                } else {
                    Err(BlobError::Unavailable(e.to_string()))
                }
            }
        }
    }
}

/// The longest one chunk upload may take.
pub const UPLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// An object body as a stream of byte chunks, read from S3 as it is polled.
fn byte_stream(body: ByteStream) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures::stream::unfold(body, |mut body| async move {
        match body.try_next().await {
            Ok(Some(bytes)) => Some((Ok(bytes), body)),
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), body)),
        }
    })
}

/// A request body handed to the SDK, which wants `Sync`: the body sits behind a mutex that is
/// only ever reached through `&mut` (never locked), and counts what passes.
struct CountingBody {
    inner: Mutex<Body>,
    seen: Arc<AtomicU64>,
    counted: Arc<AtomicU64>,
}

impl http_body::Body for CountingBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let body = this.inner.get_mut();
        let polled = Pin::new(body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let n = data.len() as u64;
                this.seen.fetch_add(n, Ordering::Relaxed);
                this.counted.fetch_add(n, Ordering::Relaxed);
            }
        }
        polled
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::Body::size_hint(&*self.inner.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::IAM_ACTIONS;

    #[test]
    fn the_iam_policy_lists_every_s3_action() {
        let policy =
            crate::aws::doc::actions(&crate::aws::doc::json_block("cache-iam-policy-json"));
        for action in IAM_ACTIONS {
            assert!(
                policy.iter().any(|a| a == action),
                "{action} missing from the cache policy"
            );
        }
        assert_eq!(
            policy.len(),
            IAM_ACTIONS.len(),
            "the policy grants nothing the cache does not call"
        );
    }
}
