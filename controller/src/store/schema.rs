//! The table's layout and the codec between its items and [`DesiredRun`].
//!
//! One item per run, keyed by the run id in `pk`. Spec attributes (written by webhooks and
//! operators) and status attributes (written only by the controller) are separate top-level
//! attributes, so each writer's `UpdateItem` names only its own and never clobbers the other's.
//! The lease is one more item under the reserved key [`LEASE_KEY`], which no run id can take
//! (run ids are `a-z0-9-`). Runner items under [`RUNNER_PREFIX`] hold what the actions cache
//! needs about a runner (its credential's hash, the job it started); they carry no `active`
//! attribute and expire through `expires_at`.
//!
//! | attribute | type | half | meaning |
//! |---|---|---|---|
//! | `pk` | S | key | run id |
//! | `labels` | L of S | spec | the job's `runs-on` labels |
//! | `pool` | S | spec | explicit pool (optional) |
//! | `repo` | S | spec | `owner/name` (optional) |
//! | `job_id`, `job_attempt`, `job_run_id` | N | spec | the Gitea job (optional) |
//! | `job_name` | S | spec | the job's name (optional) |
//! | `origin` | S | spec | `webhook`, `backfill`, `push`, `operator`, `warm` |
//! | `job_state` | S | spec | `queued`, `in-progress`, `completed` |
//! | `job_detail` | S | spec | runner of an in-progress job, conclusion of a completed one |
//! | `cancel` | BOOL | spec | the operator's cancel flag |
//! | `created_at` | S | spec | RFC 3339 |
//! | `phase` | S | status | `pending` … `cancelled` |
//! | `attempt` | N | status | current attempt, from 1 |
//! | `instance_id`, `runner_name`, `last_error`, `outcome` | S | status | optional |
//! | `runner_id` | N | status | optional |
//! | `claimed_at`, `launched_at`, `registered_at`, `took_job_at`, `warned_at`, `offline_since`, `finished_at` | S | status | RFC 3339, optional |
//! | `version` | N | status | bumped by every status write |
//! | `active` | S | status | `"1"` while the phase is not final; absent after (sparse index key) |
//! | `expires_at` | N | status | TTL, epoch seconds: set when the phase becomes final |

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use model::desired::{DesiredRun, JobRef, JobState, Origin, Phase, RunSpec, RunStatus};
use model::{InstanceId, RunId, RunnerName, Timestamp};

/// An item as the SDK holds it.
pub type Item = HashMap<String, AttributeValue>;

/// The partition key attribute.
pub const PK: &str = "pk";
/// The sparse index of active runs.
pub const ACTIVE_INDEX: &str = "active-runs";
/// The index's partition key: present (`"1"`) only while a run is not final.
pub const ACTIVE: &str = "active";
/// The value of [`ACTIVE`].
pub const ACTIVE_VALUE: &str = "1";
/// The TTL attribute (epoch seconds).
pub const EXPIRES_AT: &str = "expires_at";
/// The lease item's key.
pub const LEASE_KEY: &str = "#lease";
/// Lease holder attribute.
pub const HOLDER: &str = "holder";
/// Lease fence attribute.
pub const FENCE: &str = "fence";
/// Lease expiry attribute (epoch milliseconds). Not the TTL attribute: the lease item must
/// never expire away, or its fence would restart.
pub const LEASE_UNTIL: &str = "lease_until";
/// The status version attribute.
pub const VERSION: &str = "version";

/// The key prefix of runner items (`runner#<runner name>`): the cache credential's hash and
/// the job the runner started. No run id can take it (run ids are `a-z0-9-`), and these items
/// carry no `active` attribute, so the active index never lists them. They expire through the
/// table's TTL.
pub const RUNNER_PREFIX: &str = "runner#";
/// A runner item's credential hash attribute (S).
pub const RUNNER_CREDENTIAL: &str = "cache_credential";
/// A runner item's job attribute (S, JSON of `model::cache::RunnerJob`).
pub const RUNNER_JOB: &str = "runner_job";

/// The key of `runner`'s item.
#[must_use]
pub fn runner_key(runner: &str) -> String {
    format!("{RUNNER_PREFIX}{runner}")
}

/// Reads a runner item back.
///
/// # Errors
/// A message naming the attribute that is malformed.
pub fn decode_runner(item: &Item) -> Result<model::cache::RunnerRecord, String> {
    let r = Reader(item);
    let job = r
        .opt_s(RUNNER_JOB)?
        .map(|j| serde_json::from_str(&j).map_err(|e| format!("attribute `{RUNNER_JOB}`: {e}")))
        .transpose()?;
    Ok(model::cache::RunnerRecord {
        credential: r.opt_s(RUNNER_CREDENTIAL)?,
        job,
    })
}

/// Spec attributes.
pub const SPEC_ATTRS: &[&str] = &[
    "labels",
    "pool",
    "repo",
    "job_id",
    "job_attempt",
    "job_name",
    "job_run_id",
    "origin",
    "job_state",
    "job_detail",
    "cancel",
    "created_at",
];

/// Status attributes (the TTL and index key included).
pub const STATUS_ATTRS: &[&str] = &[
    "phase",
    "attempt",
    "instance_id",
    "runner_id",
    "runner_name",
    "claimed_at",
    "launched_at",
    "registered_at",
    "took_job_at",
    "warned_at",
    "offline_since",
    "finished_at",
    "last_error",
    "outcome",
    VERSION,
    ACTIVE,
    EXPIRES_AT,
];

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A key for `pk`.
#[must_use]
pub fn key(pk: &str) -> Item {
    HashMap::from([(PK.to_owned(), s(pk))])
}

fn origin_name(o: Origin) -> &'static str {
    match o {
        Origin::Webhook => "webhook",
        Origin::Backfill => "backfill",
        Origin::Push => "push",
        Origin::Operator => "operator",
        Origin::Warm => "warm",
    }
}

/// The spec attributes of `spec` (absent optional fields are left out).
#[must_use]
pub fn spec_attrs(spec: &RunSpec) -> Item {
    let mut m = Item::new();
    m.insert(
        "labels".into(),
        AttributeValue::L(spec.labels.iter().map(|l| s(l.clone())).collect()),
    );
    if let Some(p) = &spec.pool {
        m.insert("pool".into(), s(p.clone()));
    }
    if let Some(r) = &spec.repo {
        m.insert("repo".into(), s(r.clone()));
    }
    if let Some(j) = &spec.job {
        m.insert("job_id".into(), n(j.id));
        m.insert("job_attempt".into(), n(j.attempt));
        if let Some(name) = &j.name {
            m.insert("job_name".into(), s(name.clone()));
        }
        if let Some(r) = j.run_id {
            m.insert("job_run_id".into(), n(r));
        }
    }
    m.insert("origin".into(), s(origin_name(spec.origin)));
    m.insert("job_state".into(), s(spec.job_state.name()));
    if let Some(d) = spec.job_state.detail() {
        m.insert("job_detail".into(), s(d));
    }
    m.insert("cancel".into(), AttributeValue::Bool(spec.cancel));
    m.insert("created_at".into(), s(spec.created_at.to_string()));
    m
}

/// The status attributes of `status`, with the index key and TTL that follow from its phase.
/// Returns the attributes to set; every other name in [`STATUS_ATTRS`] is to be removed.
#[must_use]
pub fn status_attrs(status: &RunStatus, expires_at: Option<i64>) -> Item {
    let mut m = Item::new();
    m.insert("phase".into(), s(status.phase.as_str()));
    m.insert("attempt".into(), n(status.attempt));
    let mut opt = |name: &str, v: Option<AttributeValue>| {
        if let Some(v) = v {
            m.insert(name.to_owned(), v);
        }
    };
    opt(
        "instance_id",
        status.instance_id.as_ref().map(|i| s(i.as_str())),
    );
    opt("runner_id", status.runner_id.map(n));
    opt(
        "runner_name",
        status.runner_name.as_ref().map(|r| s(r.as_str())),
    );
    for (name, t) in [
        ("claimed_at", status.claimed_at),
        ("launched_at", status.launched_at),
        ("registered_at", status.registered_at),
        ("took_job_at", status.took_job_at),
        ("warned_at", status.warned_at),
        ("offline_since", status.offline_since),
        ("finished_at", status.finished_at),
    ] {
        opt(name, t.map(|t| s(t.to_string())));
    }
    opt("last_error", status.last_error.clone().map(s));
    opt("outcome", status.outcome.clone().map(s));
    m.insert(VERSION.into(), n(status.version));
    if status.phase.is_final() {
        if let Some(e) = expires_at {
            m.insert(EXPIRES_AT.into(), n(e));
        }
    } else {
        m.insert(ACTIVE.into(), s(ACTIVE_VALUE));
    }
    m
}

/// The whole item for a new run.
#[must_use]
pub fn encode(run: &DesiredRun, expires_at: Option<i64>) -> Item {
    let mut m = spec_attrs(&run.spec);
    m.extend(status_attrs(&run.status, expires_at));
    m.insert(PK.into(), s(run.id.as_str()));
    m
}

/// The item's key as text, whatever its type, for reporting an invalid row.
#[must_use]
pub fn key_text(item: &Item) -> String {
    match item.get(PK) {
        Some(AttributeValue::S(k)) => k.clone(),
        Some(other) => format!("{other:?}"),
        None => "(no pk)".into(),
    }
}

struct Reader<'a>(&'a Item);

impl Reader<'_> {
    fn get(&self, name: &str) -> Option<&AttributeValue> {
        match self.0.get(name) {
            None | Some(AttributeValue::Null(true)) => None,
            Some(v) => Some(v),
        }
    }

    fn opt_s(&self, name: &str) -> Result<Option<String>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
            Some(_) => Err(format!("attribute `{name}` must be a string (S)")),
        }
    }

    fn req_s(&self, name: &str) -> Result<String, String> {
        self.opt_s(name)?
            .ok_or_else(|| format!("attribute `{name}` is missing"))
    }

    fn opt_n<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(AttributeValue::N(v)) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("attribute `{name}`: `{v}` is not a valid number here")),
            Some(_) => Err(format!("attribute `{name}` must be a number (N)")),
        }
    }

    fn opt_time(&self, name: &str) -> Result<Option<Timestamp>, String> {
        self.opt_s(name)?
            .map(|t| Timestamp::parse(&t).map_err(|e| format!("attribute `{name}`: {e}")))
            .transpose()
    }
}

/// Reads an item back into a run.
///
/// # Errors
/// A message naming the attribute that is missing or malformed.
pub fn decode(item: &Item) -> Result<DesiredRun, String> {
    let r = Reader(item);
    let id = RunId::parse(&r.req_s(PK)?).map_err(|e| format!("attribute `pk`: {e}"))?;
    let labels = match r.get("labels") {
        Some(AttributeValue::L(items)) => items
            .iter()
            .map(|v| match v {
                AttributeValue::S(l) => Ok(l.clone()),
                _ => Err("attribute `labels` must be a list of strings".to_owned()),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(AttributeValue::Ss(items)) => items.clone(),
        Some(_) => return Err("attribute `labels` must be a list of strings (L)".into()),
        None => return Err("attribute `labels` is missing".into()),
    };
    let job = match r.opt_n::<i64>("job_id")? {
        None => None,
        Some(job_id) => Some(JobRef {
            id: job_id,
            attempt: r.opt_n("job_attempt")?.unwrap_or(1),
            name: r.opt_s("job_name")?,
            run_id: r.opt_n("job_run_id")?,
        }),
    };
    let origin = match r.req_s("origin")?.as_str() {
        "webhook" => Origin::Webhook,
        "backfill" => Origin::Backfill,
        "push" => Origin::Push,
        "operator" => Origin::Operator,
        "warm" => Origin::Warm,
        other => {
            return Err(format!(
                "attribute `origin`: `{other}` is not webhook, backfill, push, operator or warm"
            ))
        }
    };
    let detail = r.opt_s("job_detail")?;
    let job_state = match r.opt_s("job_state")?.as_deref() {
        None | Some("queued") => JobState::Queued,
        Some("in-progress") => JobState::InProgress { runner: detail },
        Some("completed") => JobState::Completed {
            conclusion: detail.unwrap_or_default(),
        },
        Some(other) => {
            return Err(format!(
                "attribute `job_state`: `{other}` is not queued, in-progress or completed"
            ))
        }
    };
    let cancel = match r.get("cancel") {
        None => false,
        Some(AttributeValue::Bool(b)) => *b,
        Some(_) => return Err("attribute `cancel` must be a boolean (BOOL)".into()),
    };
    let created_at = r
        .opt_time("created_at")?
        .ok_or("attribute `created_at` is missing")?;
    let phase = match r.opt_s("phase")? {
        None => Phase::Pending,
        Some(p) => Phase::parse(&p).map_err(|e| format!("attribute `phase`: {e}"))?,
    };
    let attempt = r.opt_n("attempt")?.unwrap_or(1);
    if attempt == 0 {
        return Err("attribute `attempt` must be at least 1".into());
    }
    let status = RunStatus {
        phase,
        attempt,
        instance_id: r.opt_s("instance_id")?.map(InstanceId::new),
        runner_id: r.opt_n("runner_id")?,
        runner_name: r.opt_s("runner_name")?.map(RunnerName::observed),
        claimed_at: r.opt_time("claimed_at")?,
        launched_at: r.opt_time("launched_at")?,
        registered_at: r.opt_time("registered_at")?,
        took_job_at: r.opt_time("took_job_at")?,
        warned_at: r.opt_time("warned_at")?,
        offline_since: r.opt_time("offline_since")?,
        finished_at: r.opt_time("finished_at")?,
        last_error: r.opt_s("last_error")?,
        outcome: r.opt_s("outcome")?,
        version: r.opt_n(VERSION)?.unwrap_or(0),
    };
    let spec = RunSpec {
        labels,
        pool: r.opt_s("pool")?,
        repo: r.opt_s("repo")?,
        job,
        origin,
        job_state,
        cancel,
        created_at,
    };
    Ok(DesiredRun { id, spec, status })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_run() -> DesiredRun {
        let spec = RunSpec {
            labels: vec!["go".into(), "linux".into()],
            pool: Some("go".into()),
            repo: Some("acme/app".into()),
            job: Some(JobRef {
                id: 42,
                attempt: 2,
                name: Some("build".into()),
                run_id: Some(7),
            }),
            origin: Origin::Webhook,
            job_state: JobState::InProgress {
                runner: Some("tq-prod-job-42-2-a1".into()),
            },
            cancel: true,
            created_at: Timestamp::from_millis(1_764_200_000_000),
        };
        let status = RunStatus {
            phase: Phase::Running,
            attempt: 1,
            instance_id: Some(InstanceId::new("i-0abc")),
            runner_id: Some(17),
            runner_name: Some(RunnerName::observed("tq-prod-job-42-2-a1")),
            claimed_at: Some(Timestamp::from_millis(1_764_200_001_000)),
            launched_at: Some(Timestamp::from_millis(1_764_200_002_000)),
            registered_at: Some(Timestamp::from_millis(1_764_200_003_000)),
            took_job_at: Some(Timestamp::from_millis(1_764_200_004_000)),
            warned_at: Some(Timestamp::from_millis(1_764_200_004_500)),
            offline_since: None,
            finished_at: None,
            last_error: Some("first try: no capacity".into()),
            outcome: Some("its runner took the job and ended".into()),
            version: 4,
        };
        DesiredRun {
            id: RunId::for_job(42, 2),
            spec,
            status,
        }
    }

    #[test]
    fn a_run_survives_the_round_trip_through_an_item() {
        let run = full_run();
        let item = encode(&run, None);
        assert_eq!(decode(&item), Ok(run));
        assert_eq!(item.get(ACTIVE), Some(&AttributeValue::S("1".into())));
        assert!(!item.contains_key(EXPIRES_AT));
    }

    #[test]
    fn a_final_run_leaves_the_index_and_gets_its_expiry() {
        let mut run = full_run();
        run.status.phase = Phase::Done;
        let item = encode(&run, Some(99));
        assert!(!item.contains_key(ACTIVE));
        assert_eq!(item.get(EXPIRES_AT), Some(&AttributeValue::N("99".into())));
    }

    #[test]
    fn spec_and_status_attributes_never_overlap() {
        let item = encode(&full_run(), None);
        for name in item.keys() {
            let in_spec = SPEC_ATTRS.contains(&name.as_str());
            let in_status = STATUS_ATTRS.contains(&name.as_str());
            assert!(
                name == PK || (in_spec ^ in_status),
                "{name} must belong to exactly one half"
            );
        }
        for name in spec_attrs(&full_run().spec).keys() {
            assert!(SPEC_ATTRS.contains(&name.as_str()), "{name}");
        }
        for name in status_attrs(&full_run().status, Some(1)).keys() {
            assert!(STATUS_ATTRS.contains(&name.as_str()), "{name}");
        }
    }

    #[test]
    fn a_hand_edited_bad_value_is_named_in_the_error() {
        let mut item = encode(&full_run(), None);
        item.insert("phase".into(), AttributeValue::S("runing".into()));
        let err = decode(&item).expect_err("bad phase");
        assert!(err.contains("phase") && err.contains("runing"), "{err}");
        let mut item = encode(&full_run(), None);
        item.insert("attempt".into(), AttributeValue::S("2".into()));
        assert!(decode(&item)
            .expect_err("wrong type")
            .contains("`attempt` must be a number"));
        let mut item = encode(&full_run(), None);
        item.remove("labels");
        assert!(decode(&item)
            .expect_err("missing")
            .contains("`labels` is missing"));
    }

    #[test]
    fn a_minimal_hand_written_row_gets_status_defaults() {
        let item = HashMap::from([
            (PK.to_owned(), s("op-rebuild")),
            ("labels".to_owned(), AttributeValue::L(vec![s("go")])),
            ("origin".to_owned(), s("operator")),
            ("created_at".to_owned(), s("2026-11-26T10:00:00Z")),
            (ACTIVE.to_owned(), s("1")),
        ]);
        let run = decode(&item).expect("valid");
        assert_eq!(run.status.phase, Phase::Pending);
        assert_eq!(run.status.attempt, 1);
        assert_eq!(run.status.version, 0);
        assert_eq!(run.spec.job_state, JobState::Queued);
    }

    #[test]
    fn the_documented_table_matches_the_code() {
        let table = crate::aws::doc::json_block("create-table-json");
        let defs: Vec<&str> = table["AttributeDefinitions"]
            .as_array()
            .expect("definitions")
            .iter()
            .filter_map(|d| d["AttributeName"].as_str())
            .collect();
        assert_eq!(defs, [PK, ACTIVE]);
        assert_eq!(table["KeySchema"][0]["AttributeName"], PK);
        assert_eq!(table["KeySchema"][0]["KeyType"], "HASH");
        let gsi = &table["GlobalSecondaryIndexes"][0];
        assert_eq!(gsi["IndexName"], ACTIVE_INDEX);
        assert_eq!(gsi["KeySchema"][0]["AttributeName"], ACTIVE);
        assert_eq!(gsi["KeySchema"][1]["AttributeName"], PK);
        assert_eq!(gsi["Projection"]["ProjectionType"], "ALL");
    }
}
