//! An in-memory [`NoticeQueue`] for tests: it holds messages until they are deleted, and can
//! be told to fail.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{Message, NoticeQueue};

/// A queue holding messages in memory; deletes remove them.
#[derive(Debug, Default)]
pub struct FakeQueue {
    messages: Mutex<Vec<Message>>,
    failing: Mutex<bool>,
}

impl FakeQueue {
    /// A queue holding `bodies`, in order, with receipts `r0`, `r1`, ….
    #[must_use]
    pub fn holding(bodies: &[String]) -> Arc<Self> {
        let q = FakeQueue::default();
        *q.messages.lock() = bodies
            .iter()
            .enumerate()
            .map(|(k, b)| Message {
                receipt: format!("r{k}"),
                body: b.clone(),
            })
            .collect();
        Arc::new(q)
    }

    /// Every receive fails (as SQS refusing the role would) while `failing`.
    pub fn set_failing(&self, failing: bool) {
        *self.failing.lock() = failing;
    }

    /// Messages not deleted yet.
    #[must_use]
    pub fn len(&self) -> usize {
        self.messages.lock().len()
    }

    /// Whether every message was deleted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl NoticeQueue for FakeQueue {
    async fn receive(&self, _wait: Duration) -> Result<Vec<Message>, String> {
        if *self.failing.lock() {
            return Err("SQS: AccessDenied".into());
        }
        Ok(self.messages.lock().iter().take(10).cloned().collect())
    }

    async fn delete(&self, receipts: &[String]) -> Result<(), String> {
        self.messages
            .lock()
            .retain(|m| !receipts.contains(&m.receipt));
        Ok(())
    }
}

/// The body EventBridge sends for an EC2 event of `detail_type` about `instance`.
#[must_use]
pub fn ec2_event(detail_type: &str, instance: &str) -> String {
    format!(
        r#"{{"version":"0","id":"1","detail-type":"{detail_type}","source":"aws.ec2","account":"1","time":"2026-12-04T14:00:00Z","region":"us-east-1","resources":[],"detail":{{"instance-id":"{instance}","instance-action":"terminate"}}}}"#
    )
}
