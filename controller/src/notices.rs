//! EC2's advance notices (Spot interruption warnings, rebalance recommendations), received
//! from the SQS queue an EventBridge rule feeds (`aws.events_queue_url`). The receiver only
//! records them in a [`NoticeBook`] and wakes the loop; the next pass observes the book and
//! the planner decides (rule "warned"). Nothing here touches an instance or a runner.
//!
//! Delivery is at least once and best effort: duplicates are recorded once, and a notice that
//! never arrives leaves the instance to the rules that read EC2's own state.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use model::notice::{parse_event, Notice, Notices};
use model::InstanceId;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::aws::ApiError;

#[cfg(any(test, feature = "testing"))]
pub mod fake;

/// The longest long poll SQS allows.
pub const LONG_POLL: Duration = Duration::from_secs(20);
/// Most messages one receive returns (SQS's limit).
const BATCH: i32 = 10;
/// Most receives one drain makes (`reconcile --once`).
const DRAIN_ROUNDS: usize = 10;

/// One message as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// What deletes it.
    pub receipt: String,
    /// The body: an EventBridge event.
    pub body: String,
}

/// The queue notices arrive on.
#[async_trait]
pub trait NoticeQueue: Send + Sync {
    /// Up to ten messages, waiting up to `wait` for the first.
    async fn receive(&self, wait: Duration) -> Result<Vec<Message>, String>;
    /// Deletes the messages with these receipts.
    async fn delete(&self, receipts: &[String]) -> Result<(), String>;
}

/// The queue over SQS.
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    /// The queue at `url`.
    #[must_use]
    pub fn new(client: aws_sdk_sqs::Client, url: &str) -> Self {
        SqsQueue {
            client,
            url: url.to_owned(),
        }
    }

    /// Whether the queue exists and may be read: its approximate depth.
    ///
    /// # Errors
    /// When SQS refuses or cannot be reached.
    pub async fn depth(&self) -> Result<u64, String> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| describe(&e))?;
        Ok(out
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }
}

/// An SQS error as one line, reduced the way every AWS call's is ([`ApiError::from_sdk`]).
fn describe<E>(e: &aws_sdk_sqs::error::SdkError<E>) -> String
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    format!("SQS: {}", ApiError::from_sdk(e))
}

#[async_trait]
impl NoticeQueue for SqsQueue {
    async fn receive(&self, wait: Duration) -> Result<Vec<Message>, String> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(BATCH)
            .wait_time_seconds(i32::try_from(wait.min(LONG_POLL).as_secs()).unwrap_or(20))
            .send()
            .await
            .map_err(|e| describe(&e))?;
        Ok(out
            .messages()
            .iter()
            .filter_map(|m| {
                Some(Message {
                    receipt: m.receipt_handle()?.to_owned(),
                    body: m.body().unwrap_or_default().to_owned(),
                })
            })
            .collect())
    }

    async fn delete(&self, receipts: &[String]) -> Result<(), String> {
        if receipts.is_empty() {
            return Ok(());
        }
        let mut entries = Vec::with_capacity(receipts.len());
        for (k, receipt) in receipts.iter().enumerate() {
            entries.push(
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(k.to_string())
                    .receipt_handle(receipt)
                    .build()
                    .map_err(|e| format!("SQS: {e}"))?,
            );
        }
        let out = self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| describe(&e))?;
        match out.failed().first() {
            // Left in the queue, the message comes back and is recorded again: harmless.
            Some(f) => Err(format!(
                "SQS: {} of {} messages not deleted: {}",
                out.failed().len(),
                receipts.len(),
                f.code()
            )),
            None => Ok(()),
        }
    }
}

/// The notices received so far, shared between the receiver and the loop; wakes the loop
/// when a new one arrives.
#[derive(Debug, Clone, Default)]
pub struct NoticeBook {
    notices: Arc<Mutex<Notices>>,
    wake: Arc<Notify>,
}

impl NoticeBook {
    /// Records `notice`; `true` (and the loop woken) when it is new.
    pub fn record(&self, notice: Notice) -> bool {
        let new = self.notices.lock().record(notice);
        if new {
            self.wake.notify_one();
        }
        new
    }

    /// Every notice known.
    #[must_use]
    pub fn snapshot(&self) -> Vec<Notice> {
        self.notices.lock().to_vec()
    }

    /// Forgets the notices of instances EC2 no longer lists (call with a whole list only).
    pub fn forget_absent(&self, listed: &[model::Instance]) {
        let ids: std::collections::HashSet<&InstanceId> = listed.iter().map(|i| &i.id).collect();
        self.notices.lock().retain(|id| ids.contains(id));
    }

    /// Resolves when a new notice was recorded.
    pub async fn changed(&self) {
        self.wake.notified().await;
    }
}

/// What one receive did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    /// Messages received.
    pub messages: usize,
    /// New notices recorded.
    pub new: usize,
    /// Duplicates of notices already known.
    pub duplicates: usize,
    /// Events of other kinds.
    pub ignored: usize,
    /// Bodies that could not be read.
    pub malformed: usize,
}

/// Receives notices from a queue into a book.
#[derive(Clone)]
pub struct NoticeReceiver {
    queue: Arc<dyn NoticeQueue>,
    book: NoticeBook,
}

impl NoticeReceiver {
    /// A receiver from `queue` into `book`.
    #[must_use]
    pub fn new(queue: Arc<dyn NoticeQueue>, book: NoticeBook) -> Self {
        NoticeReceiver { queue, book }
    }

    /// The book it records into.
    #[must_use]
    pub fn book(&self) -> &NoticeBook {
        &self.book
    }

    /// One receive, waiting up to `wait`: every message is recorded (or found to be of no
    /// interest, or unreadable, which is logged) and then deleted, so none comes back forever.
    ///
    /// # Errors
    /// When the queue cannot be read; a failed delete is logged (the messages come back and
    /// are recorded again, harmlessly).
    pub async fn receive_once(&self, wait: Duration) -> Result<Received, String> {
        let messages = self.queue.receive(wait).await?;
        let mut got = Received {
            messages: messages.len(),
            ..Received::default()
        };
        for m in &messages {
            match parse_event(&m.body) {
                Ok(Some(notice)) => {
                    tracing::info!(instance = %notice.instance, kind = %notice.kind, at = %notice.at, "EC2 notice received");
                    if self.book.record(notice) {
                        got.new += 1;
                    } else {
                        got.duplicates += 1;
                    }
                }
                Ok(None) => got.ignored += 1,
                Err(e) => {
                    got.malformed += 1;
                    tracing::warn!(error = %e, "unreadable message on the events queue; deleted");
                }
            }
        }
        let receipts: Vec<String> = messages.into_iter().map(|m| m.receipt).collect();
        if let Err(e) = self.queue.delete(&receipts).await {
            tracing::warn!(error = %e, "could not delete messages from the events queue");
        }
        Ok(got)
    }

    /// Receives until the queue is empty (at most a few rounds), without waiting: for one
    /// pass (`reconcile --once`).
    ///
    /// # Errors
    /// When the queue cannot be read.
    pub async fn drain(&self) -> Result<Received, String> {
        let mut total = Received::default();
        for _ in 0..DRAIN_ROUNDS {
            let got = self.receive_once(Duration::ZERO).await?;
            total.messages += got.messages;
            total.new += got.new;
            total.duplicates += got.duplicates;
            total.ignored += got.ignored;
            total.malformed += got.malformed;
            if got.messages == 0 {
                break;
            }
        }
        Ok(total)
    }

    /// Long-polls until `shutdown` resolves, backing off (up to a minute) while the queue
    /// cannot be read.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut failures: u32 = 0;
        loop {
            let pause = tokio::select! {
                () = &mut shutdown => break,
                got = self.receive_once(LONG_POLL) => match got {
                    Ok(_) => {
                        failures = 0;
                        Duration::ZERO
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(error = %e, failures, "cannot read the events queue; EC2 notices wait");
                        Duration::from_secs(1u64 << failures.min(6)).min(Duration::from_secs(60))
                    }
                },
            };
            if !pause.is_zero() {
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::notice::NoticeKind;

    use fake::{ec2_event as event, FakeQueue};

    fn queue_of(bodies: &[String]) -> Arc<FakeQueue> {
        FakeQueue::holding(bodies)
    }

    #[tokio::test]
    async fn records_notices_once_deletes_every_message_and_skips_what_it_cannot_read() {
        let warning = event(model::notice::INTERRUPTION_WARNING, "i-0abc");
        let q = queue_of(&[
            warning.clone(),
            warning,
            event(model::notice::REBALANCE_RECOMMENDATION, "i-0abc"),
            event("EC2 Instance State-change Notification", "i-0abc"),
            "{not json".to_owned(),
        ]);
        let rx = NoticeReceiver::new(q.clone(), NoticeBook::default());
        let got = rx.drain().await.unwrap();
        assert_eq!(
            got,
            Received {
                messages: 5,
                new: 2,
                duplicates: 1,
                ignored: 1,
                malformed: 1
            }
        );
        assert!(q.is_empty(), "nothing comes back");
        let kinds: Vec<NoticeKind> = rx.book().snapshot().iter().map(|n| n.kind).collect();
        assert_eq!(
            kinds,
            vec![
                NoticeKind::InterruptionWarning,
                NoticeKind::RebalanceRecommendation
            ]
        );
    }

    #[tokio::test]
    async fn a_new_notice_wakes_the_loop_and_gone_instances_are_forgotten() {
        let book = NoticeBook::default();
        let rx = NoticeReceiver::new(
            queue_of(&[event(model::notice::INTERRUPTION_WARNING, "i-0abc")]),
            book.clone(),
        );
        let woken = book.changed();
        tokio::pin!(woken);
        rx.receive_once(Duration::ZERO).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), woken)
            .await
            .expect("the loop is woken");
        book.forget_absent(&[]);
        assert!(book.snapshot().is_empty());
    }

    #[tokio::test]
    async fn an_unreadable_queue_is_an_error_and_records_nothing() {
        let q = queue_of(&[event(model::notice::INTERRUPTION_WARNING, "i-0abc")]);
        q.set_failing(true);
        let rx = NoticeReceiver::new(q, NoticeBook::default());
        let e = rx.drain().await.unwrap_err();
        assert!(e.contains("AccessDenied"), "{e}");
        assert!(rx.book().snapshot().is_empty());
    }
}
