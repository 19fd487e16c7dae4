//! The delivery's signature: HMAC-SHA256 of the raw body with the webhook secret.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use model::secret::Secret;
use sha2::Sha256;

use super::header;

/// HMAC-SHA256 of `body` with the secret, from `X-Gitea-Signature` (hex) or
/// `X-Hub-Signature-256` (`sha256=<hex>`), compared in constant time.
#[must_use]
pub fn signature_ok(secret: &Secret, headers: &HeaderMap, body: &[u8]) -> bool {
    let given = header(headers, "x-gitea-signature")
        .filter(|v| !v.is_empty())
        .or_else(|| header(headers, "x-hub-signature-256").and_then(|v| v.strip_prefix("sha256=")));
    let Some(Ok(given)) = given.map(hex::decode) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// The `X-Gitea-Signature` value for `body`: lowercase hex HMAC-SHA256 (for senders and tests).
#[must_use]
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    // NOTE: HMAC takes keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}
