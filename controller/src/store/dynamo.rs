//! [`DynamoStore`]: the [`Store`] port over DynamoDB. Layout and codec in [`super::schema`].
//!
//! Every write is conditional:
//! - create: `PutItem` if `pk` does not exist yet;
//! - spec writes (`set_job_state`, `set_cancel`): `UpdateItem` of spec attributes only, if the
//!   row exists (and, for the job state, if the new state moves it forward);
//! - status writes: one `TransactWriteItems` holding a `ConditionCheck` that the lease item
//!   still names our holder and fence, and an `UpdateItem` of status attributes only, if the
//!   stored version is the one we read. A controller that lost the lease cannot write;
//! - the lease: `UpdateItem` on the reserved lease key, if free, expired or ours; the fence
//!   grows by one on every acquisition.
//!
//! Calls are retried on throttling and transient failures (see [`crate::aws::retrying`]). A
//! conditional write whose first attempt landed but whose answer was lost reports on retry
//! what a repeat would: create says "not created", a status write says "conflict". Both are
//! safe: the caller re-reads and plans again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck,
    CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex, GlobalSecondaryIndexUpdate,
    IndexStatus, KeySchemaElement, KeyType, Projection, ProjectionType, ReturnValue,
    ScalarAttributeType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus, TransactWriteItem,
    Update,
};
use model::desired::{DesiredRun, JobState, RunStatus};
use model::observed::{DesiredView, InvalidRow};
use model::{RunId, Timestamp};

use super::schema::{self, Item};
use super::{expires_at, Lease, Store, StoreError};
use crate::aws::{is_throttling_code, retrying, ApiError, ApiErrorKind, CallPolicy};
use crate::clock::{Clock, SystemClock};

/// Every IAM action the store calls while running (`TransactWriteItems` needs the actions of
/// its parts: `dynamodb:ConditionCheckItem` and `dynamodb:UpdateItem`).
pub const IAM_ACTIONS: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:Query",
];

/// The IAM actions `tinqs-ci store init` calls besides those in [`IAM_ACTIONS`].
pub const INIT_IAM_ACTIONS: &[&str] = &[
    "dynamodb:DescribeTable",
    "dynamodb:CreateTable",
    "dynamodb:UpdateTable",
    "dynamodb:DescribeTimeToLive",
    "dynamodb:UpdateTimeToLive",
];

/// The desired-state table in DynamoDB.
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    retention: Duration,
    policy: CallPolicy,
    page_limit: Option<i32>,
    /// Where "now" comes from when a row's expiry (TTL) is stamped.
    clock: Arc<dyn Clock>,
    calls: AtomicU64,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("client", &self.client)
            .field("table", &self.table)
            .field("retention", &self.retention)
            .field("policy", &self.policy)
            .field("page_limit", &self.page_limit)
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

/// What `store init` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InitReport {
    /// The table was created.
    pub created_table: bool,
    /// The active-runs index was added to an existing table.
    pub created_index: bool,
    /// TTL on `expires_at` was switched on.
    pub enabled_ttl: bool,
}

impl DynamoStore {
    /// The store over `table`, keeping finished runs for `retention`, on the system clock.
    #[must_use]
    pub fn new(client: aws_sdk_dynamodb::Client, table: &str, retention: Duration) -> Self {
        Self::with_policy(client, table, retention, CallPolicy::default())
    }

    /// The same, with an explicit call policy.
    #[must_use]
    pub fn with_policy(
        client: aws_sdk_dynamodb::Client,
        table: &str,
        retention: Duration,
        policy: CallPolicy,
    ) -> Self {
        DynamoStore {
            client,
            table: table.to_owned(),
            retention,
            policy,
            page_limit: None,
            clock: Arc::new(SystemClock),
            calls: AtomicU64::new(0),
        }
    }

    /// The same store, reading "now" from `clock` (the controller's own clock).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Reads the active index in pages of at most `items` rows (DynamoDB's own limit is 1 MB
    /// per page); tests use it to exercise paging with few rows.
    #[must_use]
    pub fn with_page_limit(mut self, items: i32) -> Self {
        self.page_limit = Some(items);
        self
    }

    /// A store from the shared SDK configuration and the config file's `store` section.
    #[must_use]
    pub fn from_conf(conf: &aws_config::SdkConfig, store: &model::config::StoreConfig) -> Self {
        Self::new(
            aws_sdk_dynamodb::Client::new(conf),
            &store.table,
            store.retention,
        )
    }

    /// The table name.
    #[must_use]
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The underlying client.
    #[must_use]
    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    /// DynamoDB requests sent so far, retries included.
    #[must_use]
    pub fn api_calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    async fn call<T, F, Fut>(&self, name: &str, mut f: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ApiError>>,
    {
        retrying(&self.policy, name, || {
            self.calls.fetch_add(1, Ordering::Relaxed);
            f()
        })
        .await
    }

    fn error(&self, e: &ApiError) -> StoreError {
        classify(e, &self.table)
    }

    /// Sets one attribute of a runner's item (creating it), with the item's expiry.
    async fn set_runner_attr(
        &self,
        runner: &str,
        name: &str,
        value: AttributeValue,
        expires: Timestamp,
    ) -> Result<(), StoreError> {
        let key = schema::runner_key(runner);
        self.call("UpdateItem", || {
            let req = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(schema::key(&key)))
                .update_expression("SET #v = :v, #e = :e")
                .expression_attribute_names("#v", name)
                .expression_attribute_names("#e", schema::EXPIRES_AT)
                .expression_attribute_values(":v", value.clone())
                .expression_attribute_values(":e", AttributeValue::N(expires.as_secs().to_string()))
                .send();
            async move { req.await.map(|_| ()).map_err(|e| ApiError::from_sdk(&e)) }
        })
        .await
        .map_err(|e| self.error(&e))
    }

    async fn exists(&self, id: &RunId) -> Result<bool, StoreError> {
        let out = self
            .call("GetItem", || {
                let req = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(schema::key(id.as_str())))
                    .consistent_read(true)
                    .projection_expression("#pk")
                    .expression_attribute_names("#pk", schema::PK)
                    .send();
                async move { req.await.map_err(|e| ApiError::from_sdk(&e)) }
            })
            .await
            .map_err(|e| self.error(&e))?;
        Ok(out.item().is_some())
    }

    /// Creates the table, its active-runs index and its TTL setting where missing, and waits
    /// up to `wait` for them to become active. Safe to run again.
    ///
    /// # Errors
    /// When a call fails, the existing table has another key, or it does not become active in
    /// time.
    pub async fn init_table(&self, wait: Duration) -> Result<InitReport, StoreError> {
        let mut report = InitReport::default();
        let build =
            |e: aws_smithy_types::error::operation::BuildError| StoreError::Other(e.to_string());
        let pk_def = AttributeDefinition::builder()
            .attribute_name(schema::PK)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build)?;
        let active_def = AttributeDefinition::builder()
            .attribute_name(schema::ACTIVE)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build)?;
        let index_keys = vec![
            KeySchemaElement::builder()
                .attribute_name(schema::ACTIVE)
                .key_type(KeyType::Hash)
                .build()
                .map_err(build)?,
            KeySchemaElement::builder()
                .attribute_name(schema::PK)
                .key_type(KeyType::Range)
                .build()
                .map_err(build)?,
        ];
        let projection = Projection::builder()
            .projection_type(ProjectionType::All)
            .build();
        match self.describe().await? {
            None => {
                let gsi = GlobalSecondaryIndex::builder()
                    .index_name(schema::ACTIVE_INDEX)
                    .set_key_schema(Some(index_keys.clone()))
                    .projection(projection.clone())
                    .build()
                    .map_err(build)?;
                let pk_key = KeySchemaElement::builder()
                    .attribute_name(schema::PK)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(build)?;
                let created = self
                    .call("CreateTable", || {
                        let req = self
                            .client
                            .create_table()
                            .table_name(&self.table)
                            .attribute_definitions(pk_def.clone())
                            .attribute_definitions(active_def.clone())
                            .key_schema(pk_key.clone())
                            .global_secondary_indexes(gsi.clone())
                            .billing_mode(BillingMode::PayPerRequest)
                            .send();
                        async move { req.await.map_err(|e| ApiError::from_sdk(&e)) }
                    })
                    .await;
                match created {
                    Ok(_) => report.created_table = true,
                    // Someone else created it at the same moment: fine.
                    Err(e) if e.code() == "ResourceInUseException" => {}
                    Err(e) => return Err(self.error(&e)),
                }
            }
            Some(desc) => {
                let key_ok = desc.key_schema().len() == 1
                    && desc.key_schema()[0].attribute_name() == schema::PK
                    && desc.key_schema()[0].key_type() == &KeyType::Hash;
                if !key_ok {
                    return Err(StoreError::Other(format!(
                        "table {} exists with another key schema; tinqs-ci needs a table keyed by `pk` (string, hash key) alone",
                        self.table
                    )));
                }
                let has_index = desc
                    .global_secondary_indexes()
                    .iter()
                    .any(|g| g.index_name() == Some(schema::ACTIVE_INDEX));
                if !has_index {
                    let action = CreateGlobalSecondaryIndexAction::builder()
                        .index_name(schema::ACTIVE_INDEX)
                        .set_key_schema(Some(index_keys.clone()))
                        .projection(projection.clone())
                        .build()
                        .map_err(build)?;
                    self.wait_active(wait).await?;
                    self.call("UpdateTable", || {
                        let req = self
                            .client
                            .update_table()
                            .table_name(&self.table)
                            .attribute_definitions(pk_def.clone())
                            .attribute_definitions(active_def.clone())
                            .global_secondary_index_updates(
                                GlobalSecondaryIndexUpdate::builder()
                                    .create(action.clone())
                                    .build(),
                            )
                            .send();
                        async move { req.await.map_err(|e| ApiError::from_sdk(&e)) }
                    })
                    .await
                    .map_err(|e| self.error(&e))?;
                    report.created_index = true;
                }
            }
        }
        self.wait_active(wait).await?;
        let ttl = self
            .call("DescribeTimeToLive", || {
                let req = self
                    .client
                    .describe_time_to_live()
                    .table_name(&self.table)
                    .send();
                async move { req.await.map_err(|e| ApiError::from_sdk(&e)) }
            })
            .await
            .map_err(|e| self.error(&e))?;
        let ttl_desc = ttl.time_to_live_description();
        let status = ttl_desc.and_then(|d| d.time_to_live_status());
        let attribute = ttl_desc.and_then(|d| d.attribute_name());
        match status {
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
                if attribute == Some(schema::EXPIRES_AT) => {}
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling) => {
                return Err(StoreError::Other(format!(
                    "table {} has TTL on `{}`; tinqs-ci expires rows through `{}`. Disable that TTL first",
                    self.table,
                    attribute.unwrap_or("?"),
                    schema::EXPIRES_AT
                )));
            }
            _ => {
                let spec = TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(schema::EXPIRES_AT)
                    .build()
                    .map_err(build)?;
                self.call("UpdateTimeToLive", || {
                    let req = self
                        .client
                        .update_time_to_live()
                        .table_name(&self.table)
                        .time_to_live_specification(spec.clone())
                        .send();
                    async move { req.await.map_err(|e| ApiError::from_sdk(&e)) }
                })
                .await
                .map_err(|e| self.error(&e))?;
                report.enabled_ttl = true;
            }
        }
        Ok(report)
    }

    async fn describe(
        &self,
    ) -> Result<Option<aws_sdk_dynamodb::types::TableDescription>, StoreError> {
        let out = self
            .call("DescribeTable", || {
                let req = self.client.describe_table().table_name(&self.table).send();
                async move { req.await.map_err(|e| ApiError::from_sdk(&e)) }
            })
            .await;
        match out {
            Ok(o) => Ok(o.table),
            Err(e) if e.code() == "ResourceNotFoundException" => Ok(None),
            Err(e) => Err(self.error(&e)),
        }
    }

    async fn wait_active(&self, wait: Duration) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let desc = self.describe().await?;
            let ready = desc.as_ref().is_some_and(|d| {
                d.table_status() == Some(&TableStatus::Active)
                    && d.global_secondary_indexes()
                        .iter()
                        .all(|g| g.index_status().is_none_or(|s| s == &IndexStatus::Active))
            });
            if ready {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "table {} (or its index) did not become active within {}",
                    self.table,
                    model::time::human(wait)
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn read_lease(&self) -> Result<Option<(Option<String>, Timestamp)>, StoreError> {
        let out = self
            .call("GetItem", || {
                let req = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(schema::key(schema::LEASE_KEY)))
                    .consistent_read(true)
                    .send();
                async move { req.await.map_err(|e| ApiError::from_sdk(&e)) }
            })
            .await
            .map_err(|e| self.error(&e))?;
        Ok(out.item().map(|item| {
            let holder = match item.get(schema::HOLDER) {
                Some(AttributeValue::S(h)) => Some(h.clone()),
                _ => None,
            };
            let until = match item.get(schema::LEASE_UNTIL) {
                Some(AttributeValue::N(n)) => n
                    .parse()
                    .map(Timestamp::from_millis)
                    .unwrap_or(Timestamp::EPOCH),
                _ => Timestamp::EPOCH,
            };
            (holder, until)
        }))
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn is_conditional(e: &ApiError) -> bool {
    e.code() == "ConditionalCheckFailedException"
}

/// Classifies a failed DynamoDB call.
#[must_use]
pub fn classify(e: &ApiError, table: &str) -> StoreError {
    match e.kind {
        ApiErrorKind::Timeout(_) | ApiErrorKind::Network => {
            return StoreError::Unavailable(e.to_string())
        }
        ApiErrorKind::Other if e.status.is_some_and(|s| s >= 500) => {
            return StoreError::Unavailable(e.to_string())
        }
        ApiErrorKind::Other => return StoreError::Other(e.to_string()),
        ApiErrorKind::Service => {}
    }
    let code = e.code();
    if is_throttling_code(code) || code == "RequestLimitExceeded" {
        return StoreError::Throttled(e.to_string());
    }
    match code {
        "ResourceNotFoundException" => StoreError::NoTable(format!(
            "{table} (or its index {}): {}; run `tinqs-ci store init`",
            schema::ACTIVE_INDEX,
            e.message
        )),
        // Invalid requests, such as an item over DynamoDB's 400 KB: permanent.
        "ValidationException" => StoreError::Rejected(e.to_string()),
        "InternalServerError" | "ServiceUnavailable" | "InternalFailure" => {
            StoreError::Unavailable(e.to_string())
        }
        _ if e.status.is_some_and(|s| s >= 500) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Other(e.to_string()),
    }
}

/// Builds `SET a = :a, … REMOVE b, …` over `set` and `remove`, with placeholder names.
fn update_expression(
    set: &Item,
    remove: &[&str],
    names: &mut HashMap<String, String>,
    values: &mut HashMap<String, AttributeValue>,
) -> String {
    let mut keys: Vec<&String> = set.keys().collect();
    keys.sort();
    let mut sets = Vec::new();
    for (i, k) in keys.into_iter().enumerate() {
        names.insert(format!("#s{i}"), k.clone());
        values.insert(format!(":s{i}"), set[k].clone());
        sets.push(format!("#s{i} = :s{i}"));
    }
    let mut expr = format!("SET {}", sets.join(", "));
    let removes: Vec<String> = remove
        .iter()
        .enumerate()
        .map(|(i, k)| {
            names.insert(format!("#r{i}"), (*k).to_owned());
            format!("#r{i}")
        })
        .collect();
    if !removes.is_empty() {
        expr.push_str(" REMOVE ");
        expr.push_str(&removes.join(", "));
    }
    expr
}

#[async_trait]
impl Store for DynamoStore {
    async fn list_active(&self) -> Result<DesiredView, StoreError> {
        let mut view = DesiredView {
            runs: Vec::new(),
            invalid: Vec::new(),
            finished: Vec::new(),
            complete: false,
        };
        let mut start: Option<Item> = None;
        let mut page = 0_u64;
        loop {
            page += 1;
            let out = self
                .call("Query", || {
                    let req = self
                        .client
                        .query()
                        .table_name(&self.table)
                        .index_name(schema::ACTIVE_INDEX)
                        .key_condition_expression("#a = :one")
                        .expression_attribute_names("#a", schema::ACTIVE)
                        .expression_attribute_values(":one", s(schema::ACTIVE_VALUE))
                        .set_exclusive_start_key(start.clone())
                        .set_limit(self.page_limit)
                        .send();
                    async move { req.await.map_err(|e| ApiError::from_sdk(&e)) }
                })
                .await
                .map_err(|e| match self.error(&e) {
                    StoreError::Other(m) => StoreError::Other(format!(
                        "reading active runs, page {page} failed, the view is incomplete: {m}"
                    )),
                    StoreError::Unavailable(m) => StoreError::Unavailable(format!(
                        "reading active runs, page {page} failed, the view is incomplete: {m}"
                    )),
                    other => other,
                })?;
            for item in out.items() {
                match schema::decode(item) {
                    Ok(run) => view.runs.push(run),
                    Err(problem) => {
                        let key = schema::key_text(item);
                        tracing::warn!(row = %key, %problem, "desired run row is invalid; its instances and runners are left alone");
                        view.invalid.push(InvalidRow {
                            key,
                            error: problem,
                        });
                    }
                }
            }
            match out.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        view.complete = true;
        Ok(view)
    }

    async fn get(&self, id: &RunId) -> Result<Option<DesiredRun>, StoreError> {
        let out = self
            .call("GetItem", || {
                let req = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(schema::key(id.as_str())))
                    .consistent_read(true)
                    .send();
                async move { req.await.map_err(|e| ApiError::from_sdk(&e)) }
            })
            .await
            .map_err(|e| self.error(&e))?;
        match out.item() {
            None => Ok(None),
            Some(item) => {
                schema::decode(item)
                    .map(Some)
                    .map_err(|problem| StoreError::InvalidRow {
                        key: id.to_string(),
                        problem,
                    })
            }
        }
    }

    async fn create(&self, run: &DesiredRun) -> Result<bool, StoreError> {
        let item = schema::encode(
            run,
            expires_at(&run.status, self.retention, self.clock.now()),
        );
        let out = self
            .call("PutItem", || {
                let req = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item.clone()))
                    .condition_expression("attribute_not_exists(#pk)")
                    .expression_attribute_names("#pk", schema::PK)
                    .send();
                async move { req.await.map_err(|e| ApiError::from_sdk(&e)) }
            })
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(self.error(&e)),
        }
    }

    async fn set_job_state(&self, id: &RunId, state: &JobState) -> Result<bool, StoreError> {
        let name = state.name();
        let detail = state.detail();
        // `JobState::may_overwrite` as a condition: the stored state is an earlier one, or the
        // same one lacking the detail we now have.
        let earlier = state.overwrites();
        if earlier.is_empty() && detail.is_none() {
            // Queued never moves anything forward.
            return self.exists(id).await;
        }
        let mut values = HashMap::from([(":state".to_owned(), s(name))]);
        let mut alternatives = vec!["attribute_not_exists(#js)".to_owned()];
        for (i, e) in earlier.iter().enumerate() {
            values.insert(format!(":e{i}"), s(*e));
            alternatives.push(format!("#js = :e{i}"));
        }
        let mut update = "SET #js = :state".to_owned();
        if let Some(d) = detail {
            values.insert(":detail".into(), s(d));
            alternatives.push("(#js = :state AND attribute_not_exists(#jd))".into());
            update.push_str(", #jd = :detail");
        } else {
            update.push_str(" REMOVE #jd");
        }
        let condition = format!("attribute_exists(#pk) AND ({})", alternatives.join(" OR "));
        let names = HashMap::from([
            ("#pk".to_owned(), schema::PK.to_owned()),
            ("#js".to_owned(), "job_state".to_owned()),
            ("#jd".to_owned(), "job_detail".to_owned()),
        ]);
        let out = self
            .call("UpdateItem", || {
                let req = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(schema::key(id.as_str())))
                    .update_expression(&update)
                    .condition_expression(&condition)
                    .set_expression_attribute_names(Some(names.clone()))
                    .set_expression_attribute_values(Some(values.clone()))
                    .send();
                async move { req.await.map_err(|e| ApiError::from_sdk(&e)) }
            })
            .await;
        match out {
            Ok(_) => Ok(true),
            // Either the row is gone or the state would move backwards: tell which.
            Err(e) if is_conditional(&e) => self.exists(id).await,
            Err(e) => Err(self.error(&e)),
        }
    }

    async fn set_cancel(&self, id: &RunId, cancel: bool) -> Result<bool, StoreError> {
        let out = self
            .call("UpdateItem", || {
                let req = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(schema::key(id.as_str())))
                    .update_expression("SET #c = :c")
                    .condition_expression("attribute_exists(#pk)")
                    .expression_attribute_names("#c", "cancel")
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_values(":c", AttributeValue::Bool(cancel))
                    .send();
                async move { req.await.map_err(|e| ApiError::from_sdk(&e)) }
            })
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(self.error(&e)),
        }
    }

    async fn write_status(
        &self,
        id: &RunId,
        expected_version: u64,
        status: &RunStatus,
        lease: &Lease,
    ) -> Result<RunStatus, StoreError> {
        let mut written = status.clone();
        written.version = expected_version + 1;
        let set = schema::status_attrs(
            &written,
            expires_at(&written, self.retention, self.clock.now()),
        );
        let remove: Vec<&str> = schema::STATUS_ATTRS
            .iter()
            .copied()
            .filter(|a| !set.contains_key(*a))
            .collect();
        let mut names = HashMap::from([
            ("#pk".to_owned(), schema::PK.to_owned()),
            ("#v".to_owned(), schema::VERSION.to_owned()),
        ]);
        let mut values = HashMap::from([(":expected".to_owned(), n(expected_version))]);
        let update_expr = update_expression(&set, &remove, &mut names, &mut values);
        let condition = if expected_version == 0 {
            "attribute_exists(#pk) AND (attribute_not_exists(#v) OR #v = :expected)"
        } else {
            "attribute_exists(#pk) AND #v = :expected"
        };
        let build =
            |e: aws_smithy_types::error::operation::BuildError| StoreError::Other(e.to_string());
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(schema::key(schema::LEASE_KEY)))
            .condition_expression("#h = :h AND #f = :f")
            .expression_attribute_names("#h", schema::HOLDER)
            .expression_attribute_names("#f", schema::FENCE)
            .expression_attribute_values(":h", s(lease.holder.clone()))
            .expression_attribute_values(":f", n(lease.fence))
            .build()
            .map_err(build)?;
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(schema::key(id.as_str())))
            .update_expression(update_expr)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build)?;
        let items = vec![
            TransactWriteItem::builder().condition_check(check).build(),
            TransactWriteItem::builder().update(update).build(),
        ];
        let out = self
            .call("TransactWriteItems", || {
                let req = self
                    .client
                    .transact_write_items()
                    .set_transact_items(Some(items.clone()))
                    .send();
                async move {
                    req.await.map_err(|e| {
                        let mut api = ApiError::from_sdk(&e);
                        if let Some(TransactWriteItemsError::TransactionCanceledException(tc)) =
                            e.as_service_error()
                        {
                            api.reasons = tc
                                .cancellation_reasons()
                                .iter()
                                .map(|r| r.code().unwrap_or("None").to_owned())
                                .collect();
                        }
                        api
                    })
                }
            })
            .await;
        match out {
            Ok(_) => Ok(written),
            Err(e) if e.code() == "TransactionCanceledException" => {
                let failed = |i: usize| {
                    e.reasons
                        .get(i)
                        .is_some_and(|r| r == "ConditionalCheckFailed")
                };
                if failed(0) {
                    Err(StoreError::LeaseLost)
                } else if failed(1) {
                    Err(StoreError::Conflict(id.to_string()))
                } else if e.reasons.is_empty() && e.message.contains("ConditionalCheckFailed") {
                    // No per-item reasons: we cannot tell which check failed; re-reading
                    // resolves both cases safely.
                    Err(StoreError::Conflict(id.to_string()))
                } else {
                    Err(self.error(&e))
                }
            }
            Err(e) => Err(self.error(&e)),
        }
    }

    async fn acquire_lease(
        &self,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Lease, StoreError> {
        let until = now.plus(ttl);
        let out = self
            .call("UpdateItem", || {
                let req = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(schema::key(schema::LEASE_KEY)))
                    .update_expression("SET #h = :h, #u = :u, #f = if_not_exists(#f, :zero) + :one")
                    .condition_expression("attribute_not_exists(#pk) OR attribute_not_exists(#h) OR #u <= :now OR #h = :h")
                    .expression_attribute_names("#pk", schema::PK)
                    .expression_attribute_names("#h", schema::HOLDER)
                    .expression_attribute_names("#u", schema::LEASE_UNTIL)
                    .expression_attribute_names("#f", schema::FENCE)
                    .expression_attribute_values(":h", s(holder))
                    .expression_attribute_values(":u", n(until.as_millis()))
                    .expression_attribute_values(":now", n(now.as_millis()))
                    .expression_attribute_values(":zero", n(0))
                    .expression_attribute_values(":one", n(1))
                    .return_values(ReturnValue::AllNew)
                    .send();
                async move { req.await.map_err(|e| ApiError::from_sdk(&e)) }
            })
            .await;
        match out {
            Ok(o) => {
                let fence = match o.attributes().and_then(|a| a.get(schema::FENCE)) {
                    Some(AttributeValue::N(f)) => {
                        f.parse().map_err(|_| StoreError::InvalidRow {
                            key: schema::LEASE_KEY.into(),
                            problem: format!("attribute `fence`: `{f}` is not a number"),
                        })?
                    }
                    _ => {
                        return Err(StoreError::InvalidRow {
                            key: schema::LEASE_KEY.into(),
                            problem: "attribute `fence` is missing after acquiring".into(),
                        })
                    }
                };
                Ok(Lease {
                    holder: holder.to_owned(),
                    fence,
                    expires_at: until,
                })
            }
            Err(e) if is_conditional(&e) => match self.read_lease().await? {
                Some((Some(h), until)) => Err(StoreError::LeaseHeld { holder: h, until }),
                _ => Err(StoreError::Conflict(format!(
                    "{} (the lease changed while acquiring it)",
                    schema::LEASE_KEY
                ))),
            },
            Err(e) => Err(self.error(&e)),
        }
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Lease, StoreError> {
        let until = now.plus(ttl);
        let out = self
            .call("UpdateItem", || {
                let req = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(schema::key(schema::LEASE_KEY)))
                    .update_expression("SET #u = :u")
                    .condition_expression("#h = :h AND #f = :f")
                    .expression_attribute_names("#h", schema::HOLDER)
                    .expression_attribute_names("#u", schema::LEASE_UNTIL)
                    .expression_attribute_names("#f", schema::FENCE)
                    .expression_attribute_values(":h", s(lease.holder.clone()))
                    .expression_attribute_values(":f", n(lease.fence))
                    .expression_attribute_values(":u", n(until.as_millis()))
                    .send();
                async move { req.await.map_err(|e| ApiError::from_sdk(&e)) }
            })
            .await;
        match out {
            Ok(_) => Ok(Lease {
                expires_at: until,
                ..lease.clone()
            }),
            Err(e) if is_conditional(&e) => Err(StoreError::LeaseLost),
            Err(e) => Err(self.error(&e)),
        }
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        let out = self
            .call("UpdateItem", || {
                let req = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(schema::key(schema::LEASE_KEY)))
                    .update_expression("SET #u = :zero REMOVE #h")
                    .condition_expression("#h = :h AND #f = :f")
                    .expression_attribute_names("#h", schema::HOLDER)
                    .expression_attribute_names("#u", schema::LEASE_UNTIL)
                    .expression_attribute_names("#f", schema::FENCE)
                    .expression_attribute_values(":h", s(lease.holder.clone()))
                    .expression_attribute_values(":f", n(lease.fence))
                    .expression_attribute_values(":zero", n(0))
                    .send();
                async move { req.await.map_err(|e| ApiError::from_sdk(&e)) }
            })
            .await;
        match out {
            // Not ours any more: nothing to give up.
            Ok(_) => Ok(()),
            Err(e) if is_conditional(&e) => Ok(()),
            Err(e) => Err(self.error(&e)),
        }
    }

    async fn set_runner_credential(
        &self,
        runner: &str,
        hash: &str,
        expires: Timestamp,
    ) -> Result<(), StoreError> {
        self.set_runner_attr(runner, schema::RUNNER_CREDENTIAL, s(hash), expires)
            .await
    }

    async fn set_runner_job(
        &self,
        runner: &str,
        job: &model::cache::RunnerJob,
        expires: Timestamp,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(job).map_err(|e| StoreError::Other(e.to_string()))?;
        self.set_runner_attr(runner, schema::RUNNER_JOB, s(json), expires)
            .await
    }

    async fn runner_record(
        &self,
        runner: &str,
    ) -> Result<Option<model::cache::RunnerRecord>, StoreError> {
        let key = schema::runner_key(runner);
        let out = self
            .call("GetItem", || {
                let req = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .set_key(Some(schema::key(&key)))
                    .consistent_read(true)
                    .send();
                async move { req.await.map_err(|e| ApiError::from_sdk(&e)) }
            })
            .await
            .map_err(|e| self.error(&e))?;
        out.item()
            .map(|item| {
                schema::decode_runner(item).map_err(|problem| StoreError::InvalidRow {
                    key: key.clone(),
                    problem,
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_iam_policy_lists_every_dynamodb_action() {
        let runtime = crate::aws::doc::actions(&crate::aws::doc::json_block("iam-policy-json"));
        for action in IAM_ACTIONS {
            assert!(
                runtime.iter().any(|a| a == action),
                "{action} missing from the IAM policy"
            );
        }
        let init = crate::aws::doc::actions(&crate::aws::doc::json_block("iam-init-json"));
        for action in INIT_IAM_ACTIONS {
            assert!(
                init.iter().any(|a| a == action),
                "{action} missing from the init policy"
            );
        }
        let dynamo: Vec<&String> = runtime
            .iter()
            .filter(|a| a.starts_with("dynamodb:"))
            .collect();
        assert_eq!(
            dynamo.len(),
            IAM_ACTIONS.len(),
            "the policy grants nothing the store does not call"
        );
    }

    #[test]
    fn dynamodb_errors_are_classified() {
        let c = |code: &str| classify(&ApiError::service(code, "m"), "runs");
        assert!(matches!(
            c("ProvisionedThroughputExceededException"),
            StoreError::Throttled(_)
        ));
        assert!(matches!(c("ThrottlingException"), StoreError::Throttled(_)));
        assert!(matches!(
            c("InternalServerError"),
            StoreError::Unavailable(_)
        ));
        let StoreError::NoTable(m) = c("ResourceNotFoundException") else {
            panic!("expected NoTable")
        };
        assert!(m.contains("runs") && m.contains("store init"), "{m}");
        assert!(matches!(c("ValidationException"), StoreError::Rejected(_)));
        assert!(matches!(c("SomethingNew"), StoreError::Other(_)));
        assert!(matches!(
            classify(&ApiError::network("connection refused"), "runs"),
            StoreError::Unavailable(_)
        ));
    }

    #[test]
    fn a_status_update_sets_its_own_attributes_and_removes_the_rest() {
        let status = RunStatus {
            attempt: 1,
            version: 3,
            ..RunStatus::default()
        };
        let set = schema::status_attrs(&status, None);
        let remove: Vec<&str> = schema::STATUS_ATTRS
            .iter()
            .copied()
            .filter(|a| !set.contains_key(*a))
            .collect();
        let (mut names, mut values) = (HashMap::new(), HashMap::new());
        let expr = update_expression(&set, &remove, &mut names, &mut values);
        assert!(
            expr.starts_with("SET ") && expr.contains(" REMOVE "),
            "{expr}"
        );
        let touched: Vec<&String> = names.values().collect();
        for attr in touched {
            assert!(
                schema::STATUS_ATTRS.contains(&attr.as_str()),
                "{attr} is not a status attribute"
            );
        }
        assert!(remove.contains(&schema::EXPIRES_AT) && remove.contains(&"instance_id"));
        assert_eq!(values.len(), set.len());
    }
}
