//! EC2's advance notices about an instance: the Spot interruption warning (two minutes
//! before EC2 reclaims it) and the rebalance recommendation (earlier, when the instance is at
//! elevated risk). EC2 publishes both to EventBridge (source `aws.ec2`); a rule delivers them
//! to an SQS queue, whose message body is the event itself. Shapes from the EC2 user guide:
//! "Spot Instance interruption notices" and "EC2 instance rebalance recommendations".
//!
//! A notice is an observation like any other: the planner decides what it means
//! ([`crate::plan`], rule "warned"). Notices are best effort (EC2 says so): a lost or late one
//! leaves the instance to the rules that look at EC2's own state.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::InstanceId;
use crate::time::Timestamp;

/// The `detail-type` of a Spot interruption warning.
pub const INTERRUPTION_WARNING: &str = "EC2 Spot Instance Interruption Warning";
/// The `detail-type` of a rebalance recommendation.
pub const REBALANCE_RECOMMENDATION: &str = "EC2 Instance Rebalance Recommendation";

/// Which notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeKind {
    /// EC2 reclaims the Spot instance in about two minutes.
    InterruptionWarning,
    /// The Spot instance is at elevated risk of interruption.
    RebalanceRecommendation,
}

impl fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoticeKind::InterruptionWarning => "Spot interruption warning",
            NoticeKind::RebalanceRecommendation => "rebalance recommendation",
        })
    }
}

/// One notice about one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The instance.
    pub instance: InstanceId,
    /// Which notice.
    pub kind: NoticeKind,
    /// When EC2 emitted it (the event's `time`).
    pub at: Timestamp,
}

/// Reads one EventBridge event (an SQS message body). `Ok(None)` for a well-formed event of
/// another kind (the queue may carry others); an error names what is wrong with a malformed
/// one. Never panics, whatever the text.
///
/// # Errors
/// When the body is not JSON, or a notice lacks its instance id or a valid time.
pub fn parse_event(body: &str) -> Result<Option<Notice>, String> {
    #[derive(Deserialize)]
    struct Event {
        #[serde(rename = "detail-type")]
        detail_type: Option<String>,
        source: Option<String>,
        time: Option<String>,
        detail: Option<Detail>,
    }
    #[derive(Deserialize)]
    struct Detail {
        #[serde(rename = "instance-id")]
        instance_id: Option<String>,
    }
    let event: Event = serde_json::from_str(body)
        .map_err(|e| format!("not an EventBridge event (JSON object expected): {e}"))?;
    let kind = match event.detail_type.as_deref() {
        Some(INTERRUPTION_WARNING) => NoticeKind::InterruptionWarning,
        Some(REBALANCE_RECOMMENDATION) => NoticeKind::RebalanceRecommendation,
        _ => return Ok(None),
    };
    if event.source.as_deref() != Some("aws.ec2") {
        return Ok(None); // only EC2 speaks for EC2's instances
    }
    let id = event
        .detail
        .and_then(|d| d.instance_id)
        .ok_or_else(|| format!("{kind} without detail.instance-id"))?;
    if !is_instance_id(&id) {
        return Err(format!(
            "{kind}: detail.instance-id `{}` is not an EC2 instance id (i- and hex digits)",
            crate::text::escape_control(&id.chars().take(40).collect::<String>())
        ));
    }
    let instance = InstanceId::new(id);
    let time = event
        .time
        .ok_or_else(|| format!("{kind} for {instance} without a time"))?;
    let at = Timestamp::parse(&time).map_err(|e| format!("{kind} for {instance}: time: {e}"))?;
    Ok(Some(Notice { instance, kind, at }))
}

/// `i-` and hex digits, as EC2 names instances (8 or 17 of them; moto's alike).
fn is_instance_id(s: &str) -> bool {
    s.strip_prefix("i-").is_some_and(|hex| {
        (1..=32).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// The notices known, one per instance and kind (the earliest), forgetting those of instances
/// that are gone. Duplicates are expected: EventBridge and SQS deliver at least once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notices {
    by_instance: BTreeMap<(InstanceId, NoticeKind), Timestamp>,
}

impl Notices {
    /// Records `notice`; `true` when it is new (not a duplicate).
    pub fn record(&mut self, notice: Notice) -> bool {
        match self
            .by_instance
            .get_mut(&(notice.instance.clone(), notice.kind))
        {
            Some(at) => {
                if notice.at < *at {
                    *at = notice.at;
                }
                false
            }
            None => {
                self.by_instance
                    .insert((notice.instance, notice.kind), notice.at);
                true
            }
        }
    }

    /// Forgets the notices of instances for which `keep` is false (gone from EC2's list).
    pub fn retain(&mut self, mut keep: impl FnMut(&InstanceId) -> bool) {
        self.by_instance.retain(|(id, _), _| keep(id));
    }

    /// Every notice known, by instance.
    #[must_use]
    pub fn to_vec(&self) -> Vec<Notice> {
        self.by_instance
            .iter()
            .map(|((instance, kind), at)| Notice {
                instance: instance.clone(),
                kind: *kind,
                at: *at,
            })
            .collect()
    }

    /// How many are known.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_instance.len()
    }

    /// Whether none is known.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_instance.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(detail_type: &str, detail: &str) -> String {
        format!(
            r#"{{"version":"0","id":"7bf73129-1428-4cd3-a780-95db273d1602","detail-type":"{detail_type}","source":"aws.ec2","account":"123456789012","time":"2026-12-04T14:00:00Z","region":"us-east-1","resources":["arn:aws:ec2:us-east-1:123456789012:instance/i-0b662ef9931388ba0"],"detail":{detail}}}"#
        )
    }

    #[test]
    fn reads_an_interruption_warning_and_a_rebalance_recommendation() {
        let warning = event(
            INTERRUPTION_WARNING,
            r#"{"instance-id":"i-0b662ef9931388ba0","instance-action":"terminate"}"#,
        );
        let n = parse_event(&warning).unwrap().unwrap();
        assert_eq!(n.instance.as_str(), "i-0b662ef9931388ba0");
        assert_eq!(n.kind, NoticeKind::InterruptionWarning);
        assert_eq!(n.at, Timestamp::parse("2026-12-04T14:00:00Z").unwrap());
        let rebalance = event(
            REBALANCE_RECOMMENDATION,
            r#"{"instance-id":"i-0b662ef9931388ba0"}"#,
        );
        assert_eq!(
            parse_event(&rebalance).unwrap().unwrap().kind,
            NoticeKind::RebalanceRecommendation
        );
    }

    #[test]
    fn other_events_are_not_notices() {
        let state = event(
            "EC2 Instance State-change Notification",
            r#"{"instance-id":"i-0b662ef9931388ba0","state":"running"}"#,
        );
        assert_eq!(parse_event(&state), Ok(None));
        let forged = event(
            INTERRUPTION_WARNING,
            r#"{"instance-id":"i-0b662ef9931388ba0"}"#,
        )
        .replace("\"aws.ec2\"", "\"my.app\"");
        assert_eq!(
            parse_event(&forged),
            Ok(None),
            "only EC2's own events count"
        );
    }

    #[test]
    fn a_malformed_notice_is_an_error_naming_what_is_wrong() {
        let e = parse_event("not json").unwrap_err();
        assert!(e.contains("not an EventBridge event"), "{e}");
        let e = parse_event(&event(INTERRUPTION_WARNING, "{}")).unwrap_err();
        assert!(e.contains("detail.instance-id"), "{e}");
        let e =
            parse_event(&event(INTERRUPTION_WARNING, r#"{"instance-id":"vol-1"}"#)).unwrap_err();
        assert!(e.contains("detail.instance-id"), "{e}");
        let bad_time = event(INTERRUPTION_WARNING, r#"{"instance-id":"i-1"}"#)
            .replace("2026-12-04T14:00:00Z", "yesterday");
        let e = parse_event(&bad_time).unwrap_err();
        assert!(e.contains("time"), "{e}");
    }

    #[test]
    fn duplicates_are_recorded_once_keeping_the_earliest() {
        let mut notices = Notices::default();
        let n = |secs: u64| Notice {
            instance: InstanceId::new("i-1"),
            kind: NoticeKind::InterruptionWarning,
            at: Timestamp::from_millis(i64::try_from(secs * 1000).unwrap()),
        };
        assert!(notices.record(n(20)));
        assert!(!notices.record(n(10)));
        assert!(!notices.record(n(30)));
        assert_eq!(notices.to_vec(), vec![n(10)]);
        notices.retain(|id| id.as_str() != "i-1");
        assert!(notices.is_empty());
    }
}
