//! Webhook delivery, one at a time in order, the way Gitea signs and sends them.
//!
//! Headers follow go-gitea/gitea v1.26.4 services/webhook/deliver.go (`addDefaultHeaders`): `X-Gitea-Event`,
//! `X-Gitea-Delivery` (a fresh UUID), `X-Gitea-Signature` (lowercase hex HMAC-SHA256 of the
//! exact body, empty without a secret), the Gogs/GitHub aliases and `X-Hub-Signature-256`.
//! Timeout as configured (Gitea: 5 s); no retries.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::{mpsc, watch};

use crate::shared::Shared;
use crate::state::Outgoing;
use crate::types::Delivery;

/// Lowercase hex HMAC-SHA256 of `body` under `secret`; empty when the secret is empty.
#[must_use]
pub fn sign(secret: &str, body: &[u8]) -> String {
    if secret.is_empty() {
        return String::new();
    }
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        // HMAC accepts keys of any length; this branch cannot be reached.
        Err(_) => String::new(),
    }
}

pub(crate) async fn deliver_loop(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    mut stop: watch::Receiver<bool>,
) {
    let client = match reqwest::Client::builder()
        .timeout(shared.webhook_timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook client; webhooks will not be sent");
            return;
        }
    };
    let mut dropped_seen: u64 = 0;
    loop {
        let out = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            o = rx.recv() => match o { Some(o) => o, None => return },
        };
        let (target, drop_fraction) = {
            let st = shared.state.lock();
            (st.webhook.clone(), st.faults.drop_webhooks)
        };
        if let Some(target) = target {
            let body = serde_json::to_vec(&out.body).unwrap_or_default();
            let mut delivery = Delivery {
                id: uuid::Uuid::new_v4().to_string(),
                event: out.event.to_owned(),
                action: out.action.clone(),
                job_id: out.job_id,
                url: target.url.clone(),
                status: None,
                error: None,
                dropped: false,
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            dropped_seen += 1;
            let frac = drop_fraction.clamp(0.0, 1.0);
            let n = dropped_seen as f64;
            if (n * frac).floor() > ((n - 1.0) * frac).floor() {
                delivery.dropped = true;
                tracing::debug!(event = out.event, "webhook dropped by fault");
            } else {
                let sig = sign(&target.secret, &body);
                let result = client
                    .post(&target.url)
                    .header("Content-Type", "application/json")
                    .header("X-Gitea-Delivery", &delivery.id)
                    .header("X-Gitea-Event", out.event)
                    .header("X-Gitea-Event-Type", out.event)
                    .header("X-Gitea-Signature", &sig)
                    .header("X-Gitea-Hook-Installation-Target-Type", "repository")
                    .header("X-Gogs-Delivery", &delivery.id)
                    .header("X-Gogs-Event", out.event)
                    .header("X-Gogs-Event-Type", out.event)
                    .header("X-Gogs-Signature", &sig)
                    .header("X-GitHub-Delivery", &delivery.id)
                    .header("X-GitHub-Event", out.event)
                    .header("X-GitHub-Event-Type", out.event)
                    .header("X-GitHub-Hook-Installation-Target-Type", "repository")
                    .header("X-Hub-Signature-256", format!("sha256={sig}"))
                    .body(body)
                    .send()
                    .await;
                match result {
                    Ok(resp) => delivery.status = Some(resp.status().as_u16()),
                    Err(e) => {
                        delivery.error = Some(if e.is_timeout() {
                            "timeout".to_owned()
                        } else {
                            e.to_string()
                        })
                    }
                }
                tracing::debug!(event = out.event, status = ?delivery.status, "webhook delivered");
            }
            shared.deliveries.lock().push(delivery);
        }
        shared.pending_hooks.fetch_sub(1, Ordering::SeqCst);
        shared.hooks_idle.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_lowercase_hex_hmac_sha256_and_empty_without_secret() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(sign("", b"x"), "");
    }
}
