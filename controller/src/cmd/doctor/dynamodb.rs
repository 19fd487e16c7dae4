//! The DynamoDB checks: the table's shape and state, and the controller's reads and writes
//! (writes probed with conditions that cannot hold, so nothing is written).

use aws_sdk_dynamodb::types::{
    AttributeValue, IndexStatus, KeyType, TableStatus, TimeToLiveStatus,
};

use crate::aws::ApiError;
use crate::store::schema;

use super::aws::{aws_problem, describe, is_bad_credentials, is_denied, probe, Probe};
use super::check::Check;

/// DynamoDB: the table exists, is keyed by `pk`, is active, has the `active-runs` index
/// (active) and TTL on `expires_at` (`DescribeTable`, `DescribeTimeToLive`: only `store init`'s
/// role is granted these, so a refusal is skipped, not a problem); the controller's reads work
/// (`Query` on the index, `GetItem` of the lease, whose holder is shown); its writes are
/// permitted (`PutItem` and `UpdateItem` with a condition that cannot hold, so nothing is
/// written).
pub async fn check_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Vec<Check> {
    let mut out = Vec::new();
    let init = format!(
        "run `tinqs-ci store init --config FILE` (creates table {table}, its index and TTL)"
    );
    match probe(async { client.describe_table().table_name(table).send().await.map_err(|e| ApiError::from_sdk(&e)) }).await {
        Ok(o) => match o.table() {
            Some(desc) => out.extend(judge_table(desc, table)),
            None => out.push(Check::problem("dynamodb table", format!("DescribeTable returned no table {table}"), init.clone())),
        },
        Err(e) if e.code() == "ResourceNotFoundException" => {
            out.push(Check::problem("dynamodb table", format!("table {table} does not exist in this region"), init));
            return out;
        }
        Err(e) if is_denied(&e) => out.push(Check::skipped(
            "dynamodb table",
            format!("DescribeTable is not granted (only `store init` needs it); the Query below checks table {table} and its index"),
        )),
        Err(e) => {
            out.push(aws_problem("dynamodb table", "dynamodb:DescribeTable", &e));
            if e.code().is_empty() || is_bad_credentials(&e) {
                return out;
            }
        }
    }
    match probe(async {
        client
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk(&e))
    })
    .await
    {
        Ok(o) => {
            let d = o.time_to_live_description();
            let on = matches!(
                d.and_then(|d| d.time_to_live_status()),
                Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
            ) && d.and_then(|d| d.attribute_name()) == Some(schema::EXPIRES_AT);
            out.push(if on {
                Check::ok(
                    "dynamodb TTL",
                    format!(
                        "on {}: finished runs expire by themselves",
                        schema::EXPIRES_AT
                    ),
                )
            } else {
                Check::problem(
                    "dynamodb TTL",
                    format!(
                        "TTL is not on {}: finished runs stay in the table forever",
                        schema::EXPIRES_AT
                    ),
                    init.clone(),
                )
            });
        }
        Err(e) if is_denied(&e) => out.push(Check::skipped(
            "dynamodb TTL",
            "DescribeTimeToLive is not granted (only `store init` needs it)",
        )),
        Err(e) if e.code() == "ResourceNotFoundException" => {}
        Err(e) => out.push(aws_problem(
            "dynamodb TTL",
            "dynamodb:DescribeTimeToLive",
            &e,
        )),
    }
    let query = async {
        client
            .query()
            .table_name(table)
            .index_name(schema::ACTIVE_INDEX)
            .key_condition_expression("#a = :one")
            .expression_attribute_names("#a", schema::ACTIVE)
            .expression_attribute_values(":one", AttributeValue::S(schema::ACTIVE_VALUE.into()))
            .limit(1)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk(&e))
    };
    match probe(query).await {
        Ok(_) => out.push(Check::ok(
            "dynamodb read",
            format!("Query on index {} permitted", schema::ACTIVE_INDEX),
        )),
        Err(e) if e.code() == "ResourceNotFoundException" || e.message.contains("index") => {
            out.push(Check::problem("dynamodb read", describe(&e), init.clone()))
        }
        Err(e) => out.push(aws_problem(
            "dynamodb read",
            "dynamodb:Query on the table's index active-runs",
            &e,
        )),
    }
    let lease = async {
        client
            .get_item()
            .table_name(table)
            .key(schema::PK, AttributeValue::S(schema::LEASE_KEY.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk(&e))
    };
    match probe(lease).await {
        Ok(o) => out.push(Check::ok("dynamodb lease", lease_text(o.item()))),
        Err(e) => out.push(aws_problem("dynamodb lease", "dynamodb:GetItem", &e)),
    }
    // Writes that cannot happen: the conditions contradict each other, so DynamoDB refuses
    // them on the condition, which it evaluates only after the permission.
    let probe_key = AttributeValue::S("#doctor-probe".into());
    let put = async {
        client
            .put_item()
            .table_name(table)
            .item(schema::PK, probe_key.clone())
            .condition_expression("attribute_exists(#pk) AND attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            .send()
            .await
            .map_err(|e| ApiError::from_sdk(&e))
    };
    out.push(write_check(
        "dynamodb write: PutItem",
        "dynamodb:PutItem",
        probe(put).await.map(|_| ()),
    ));
    let update = async {
        client
            .update_item()
            .table_name(table)
            .key(schema::PK, probe_key.clone())
            .update_expression("SET #c = :c")
            .condition_expression("attribute_exists(#pk) AND attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", schema::PK)
            .expression_attribute_names("#c", "doctor")
            .expression_attribute_values(":c", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| ApiError::from_sdk(&e))
    };
    out.push(write_check(
        "dynamodb write: UpdateItem",
        "dynamodb:UpdateItem",
        probe(update).await.map(|_| ()),
    ));
    out
}

fn write_check(name: &str, action: &str, result: Probe<()>) -> Check {
    match result {
        Err(e) if e.code() == "ConditionalCheckFailedException" => Check::ok(
            name,
            "permitted (probed with a write whose condition cannot hold; nothing was written)",
        ),
        Err(e) => aws_problem(name, action, &e),
        Ok(()) => Check::problem(
            name,
            "the endpoint wrote a probe row whose condition cannot hold",
            "check AWS_ENDPOINT_URL: this is not DynamoDB's behaviour",
        ),
    }
}

fn lease_text(item: Option<&std::collections::HashMap<String, AttributeValue>>) -> String {
    let holder = item.and_then(|i| match i.get(schema::HOLDER) {
        Some(AttributeValue::S(h)) if !h.is_empty() => Some(h.clone()),
        _ => None,
    });
    let until = item.and_then(|i| match i.get(schema::LEASE_UNTIL) {
        Some(AttributeValue::N(n)) => n.parse::<i64>().ok().map(model::Timestamp::from_millis),
        _ => None,
    });
    match (holder, until) {
        (Some(h), Some(u)) => format!("held by {h} until {u} (a controller applies plans)"),
        (Some(h), None) => format!("held by {h}"),
        (None, _) => "free: no controller holds it now".to_owned(),
    }
}

/// Judges a table description: key schema, status, the active-runs index and its status.
#[must_use]
pub fn judge_table(desc: &aws_sdk_dynamodb::types::TableDescription, table: &str) -> Vec<Check> {
    let init =
        format!("run `tinqs-ci store init --config FILE` (adds what is missing to table {table})");
    let mut out = Vec::new();
    let key_ok = desc.key_schema().len() == 1
        && desc.key_schema()[0].attribute_name() == schema::PK
        && desc.key_schema()[0].key_type() == &KeyType::Hash;
    if !key_ok {
        out.push(Check::problem(
            "dynamodb table",
            format!("table {table} is keyed otherwise than by `{}` alone", schema::PK),
            "use another store.table name (tinqs-ci needs a table keyed by `pk`, string, hash key only) and run `tinqs-ci store init`",
        ));
        return out;
    }
    match desc.table_status() {
        Some(TableStatus::Active) => out.push(Check::ok(
            "dynamodb table",
            format!("{table} exists and is active"),
        )),
        other => out.push(Check::problem(
            "dynamodb table",
            format!(
                "table {table} is {}",
                other.map_or("in an unknown state", |s| s.as_str())
            ),
            "wait for it to become ACTIVE (`aws dynamodb describe-table`), or restore it",
        )),
    }
    let index = desc
        .global_secondary_indexes()
        .iter()
        .find(|g| g.index_name() == Some(schema::ACTIVE_INDEX));
    match index {
        None => out.push(Check::problem(
            "dynamodb index",
            format!("table {table} has no index {}", schema::ACTIVE_INDEX),
            init,
        )),
        Some(g) => match g.index_status() {
            None | Some(IndexStatus::Active) => out.push(Check::ok(
                "dynamodb index",
                format!("{} exists and is active", schema::ACTIVE_INDEX),
            )),
            Some(s) => out.push(Check::problem(
                "dynamodb index",
                format!("index {} is {}", schema::ACTIVE_INDEX, s.as_str()),
                "wait for it to become ACTIVE (an index on a large table takes minutes to build)",
            )),
        },
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::doctor::check::{all_passed, Verdict};
    use aws_sdk_dynamodb::types::{
        GlobalSecondaryIndexDescription, KeySchemaElement, TableDescription,
    };
    fn key(name: &str, kind: KeyType) -> KeySchemaElement {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key")
    }

    #[test]
    fn an_active_table_with_an_active_index_passes() {
        let desc = TableDescription::builder()
            .key_schema(key("pk", KeyType::Hash))
            .table_status(TableStatus::Active)
            .global_secondary_indexes(
                GlobalSecondaryIndexDescription::builder()
                    .index_name(schema::ACTIVE_INDEX)
                    .index_status(IndexStatus::Active)
                    .build(),
            )
            .build();
        let checks = judge_table(&desc, "runs");
        assert!(all_passed(&checks), "{checks:?}");
        assert_eq!(checks.len(), 2);
    }

    #[test]
    fn a_missing_index_is_a_problem_fixed_by_store_init() {
        let desc = TableDescription::builder()
            .key_schema(key("pk", KeyType::Hash))
            .table_status(TableStatus::Active)
            .build();
        let checks = judge_table(&desc, "runs");
        let problem = checks.iter().find(|c| c.is_problem()).expect("a problem");
        assert_eq!(problem.name, "dynamodb index");
        assert!(
            problem
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("store init")),
            "{problem:?}"
        );
    }

    #[test]
    fn a_building_index_and_a_table_keyed_otherwise_are_problems() {
        let building = TableDescription::builder()
            .key_schema(key("pk", KeyType::Hash))
            .table_status(TableStatus::Active)
            .global_secondary_indexes(
                GlobalSecondaryIndexDescription::builder()
                    .index_name(schema::ACTIVE_INDEX)
                    .index_status(IndexStatus::Creating)
                    .build(),
            )
            .build();
        let checks = judge_table(&building, "runs");
        assert!(
            checks
                .iter()
                .any(|c| c.is_problem() && c.detail.contains("CREATING")),
            "{checks:?}"
        );

        let other_key = TableDescription::builder()
            .key_schema(key("id", KeyType::Hash))
            .table_status(TableStatus::Active)
            .build();
        let checks = judge_table(&other_key, "runs");
        assert_eq!(checks.len(), 1);
        assert!(checks[0].is_problem() && checks[0].detail.contains("keyed otherwise"));
    }

    #[test]
    fn the_lease_text_names_the_holder_or_says_it_is_free() {
        assert_eq!(lease_text(None), "free: no controller holds it now");
        let item = std::collections::HashMap::from([
            (
                schema::HOLDER.to_owned(),
                AttributeValue::S("host-a/42".into()),
            ),
            (
                schema::LEASE_UNTIL.to_owned(),
                AttributeValue::N("1767225600000".into()),
            ),
        ]);
        assert_eq!(
            lease_text(Some(&item)),
            "held by host-a/42 until 2026-01-01T00:00:00.000Z (a controller applies plans)"
        );
    }

    #[test]
    fn a_denied_write_names_the_permission_and_the_policy() {
        let check = write_check(
            "dynamodb write: PutItem",
            "dynamodb:PutItem",
            Err(ApiError::service(
                "AccessDeniedException",
                "not authorized to perform dynamodb:PutItem",
            )),
        );
        assert!(check.is_problem());
        let fix = check.fix.expect("fix");
        assert!(
            fix.contains("dynamodb:PutItem") && fix.contains("DevOps-Reference"),
            "{fix}"
        );
        let ok = write_check(
            "dynamodb write: PutItem",
            "dynamodb:PutItem",
            Err(ApiError::service(
                "ConditionalCheckFailedException",
                "The conditional request failed",
            )),
        );
        assert_eq!(ok.verdict, Verdict::Ok);
    }
}
