//! The DynamoDB store and the EC2 fleet against moto, through the real AWS SDK.
//!
//! Run with `make test-aws` (or `scripts/with-moto.sh cargo test -p tinqs-ci --test aws`):
//! the wrapper starts moto on a loopback port and exports `TINQS_TEST_MOTO_URL`,
//! `AWS_ENDPOINT_URL`, test credentials and the region. Every test uses its own table and
//! cluster id, so they run in parallel against one moto. The store's and the fleet's contract
//! clauses are the shared suites in `tests/contract/` (`store_port::*` and `fleet_port::*`
//! here), which the in-memory table and the fakes pass too (`tests/store_contract.rs`,
//! `tests/fleet_contract.rs`).
//!
//! What moto cannot do (honour client tokens, answer with capacity errors or throttling) is
//! tested through the in-memory EC2 in `controller/src/fleet/ec2/tests.rs`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_ec2::types::{Filter, InstanceAttributeName, ResourceType, Tag, TagSpecification};
use base64::Engine as _;
use controller::aws::CallPolicy;
use controller::fleet::ec2::{Ec2Fleet, Ec2Settings, SdkEc2};
use controller::fleet::Fleet;
use controller::store::dynamo::DynamoStore;
use controller::store::{schema, Store, StoreError};
use model::config::{Market, PoolConfig};
use model::desired::{Phase, RunStatus};
use model::{tags, InstanceId, Lifecycle};

/// The SDK configuration for moto; refuses anything but a loopback endpoint.
async fn conf() -> aws_config::SdkConfig {
    controller::aws::moto::config()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..10])
}

/// A fresh table, initialised, with a fast retry policy.
async fn store() -> DynamoStore {
    let conf = conf().await;
    let store = DynamoStore::with_policy(
        aws_sdk_dynamodb::Client::new(&conf),
        &unique("runs"),
        Duration::from_secs(3600),
        CallPolicy::fast(),
    );
    store
        .init_table(Duration::from_secs(30))
        .await
        .expect("store init");
    store
}

#[path = "contract/store.rs"]
#[macro_use]
mod store_contract;

use store_contract::{run, t, TTL as LEASE_TTL};

/// The store port's contract (`tests/contract/store.rs`) on DynamoDB; the in-memory table
/// passes the same clauses (`tests/store_contract.rs`).
mod store_port {
    store_contract!(super::store().await);
}

#[tokio::test]
async fn store_init_creates_table_index_and_ttl_and_a_second_run_changes_nothing() {
    let conf = conf().await;
    let table = unique("runs");
    let client = aws_sdk_dynamodb::Client::new(&conf);
    let store = DynamoStore::new(client.clone(), &table, Duration::from_secs(3600));
    let first = store
        .init_table(Duration::from_secs(30))
        .await
        .expect("first init");
    assert!(first.created_table && first.enabled_ttl, "{first:?}");
    let second = store
        .init_table(Duration::from_secs(30))
        .await
        .expect("second init");
    assert_eq!(second, Default::default(), "nothing left to do");
    let desc = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .expect("describe");
    let t = desc.table().expect("table");
    assert_eq!(t.key_schema()[0].attribute_name(), schema::PK);
    assert!(t
        .global_secondary_indexes()
        .iter()
        .any(|g| g.index_name() == Some(schema::ACTIVE_INDEX)));
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .expect("ttl");
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some(schema::EXPIRES_AT)
    );
}

#[tokio::test]
async fn a_missing_table_is_reported_with_the_command_that_creates_it() {
    let conf = conf().await;
    let store = DynamoStore::with_policy(
        aws_sdk_dynamodb::Client::new(&conf),
        &unique("absent"),
        Duration::from_secs(60),
        CallPolicy::fast(),
    );
    let err = store.list_active().await.expect_err("no table");
    assert!(
        matches!(&err, StoreError::NoTable(m) if m.contains("store init")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_item_over_dynamodbs_size_limit_is_rejected_for_good_not_taken_for_an_outage() {
    let store = store().await;
    let mut big = run(2);
    big.spec.labels = vec!["x".repeat(450_000)];
    let err = store.create(&big).await.expect_err("over 400 KB");
    assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
    assert_eq!(store.get(&big.id).await.expect("get"), None);
}

#[tokio::test]
async fn a_hand_edited_invalid_row_is_reported_alone() {
    let store = store().await;
    store.create(&run(1)).await.expect("create");
    store.create(&run(2)).await.expect("create");
    let client = store.client();
    client
        .update_item()
        .table_name(store.table())
        .key(schema::PK, AttributeValue::S(run(2).id.to_string()))
        .update_expression("SET phase = :p")
        .expression_attribute_values(":p", AttributeValue::S("runing".into()))
        .send()
        .await
        .expect("hand edit");
    let mut raw = HashMap::new();
    raw.insert(
        schema::PK.to_owned(),
        AttributeValue::S("Not A Valid Id".into()),
    );
    raw.insert(schema::ACTIVE.to_owned(), AttributeValue::S("1".into()));
    client
        .put_item()
        .table_name(store.table())
        .set_item(Some(raw))
        .send()
        .await
        .expect("raw row");
    let view = store.list_active().await.expect("the read itself succeeds");
    assert_eq!(view.runs, vec![run(1)]);
    let mut keys: Vec<&str> = view.invalid.iter().map(|i| i.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["Not A Valid Id", "job-2-1"]);
    let bad = view
        .invalid
        .iter()
        .find(|i| i.key == "job-2-1")
        .expect("job-2-1");
    assert!(
        bad.error.contains("phase") && bad.error.contains("runing"),
        "{}",
        bad.error
    );
    let err = store.get(&run(2).id).await.expect_err("invalid row");
    assert!(matches!(err, StoreError::InvalidRow { .. }), "{err:?}");
}

#[tokio::test]
async fn final_runs_leave_the_active_index_and_carry_their_expiry() {
    let store = store().await;
    store.create(&run(1)).await.expect("create");
    store.create(&run(2)).await.expect("create");
    let lease = store
        .acquire_lease("ctl-a", LEASE_TTL, t(0))
        .await
        .expect("lease");
    let done = RunStatus {
        phase: Phase::Done,
        attempt: 1,
        finished_at: Some(t(100)),
        ..RunStatus::default()
    };
    store
        .write_status(&run(1).id, 0, &done, &lease)
        .await
        .expect("finish");
    let view = store.list_active().await.expect("list");
    assert_eq!(
        view.runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![run(2).id]
    );
    let item = store
        .client()
        .get_item()
        .table_name(store.table())
        .key(schema::PK, AttributeValue::S(run(1).id.to_string()))
        .send()
        .await
        .expect("raw get");
    let item = item.item().expect("row");
    assert_eq!(
        item.get(schema::EXPIRES_AT),
        Some(&AttributeValue::N((t(100).as_secs() + 3600).to_string()))
    );
    assert!(!item.contains_key(schema::ACTIVE));
}

#[tokio::test]
async fn list_active_reads_every_page() {
    let store = store().await.with_page_limit(3);
    for job in 0..10 {
        store.create(&run(job)).await.expect("create");
    }
    let before = store.api_calls();
    let view = store.list_active().await.expect("list");
    assert_eq!(view.runs.len(), 10);
    assert!(store.api_calls() - before >= 4, "10 rows in pages of 3");
}

// ---------------------------------------------------------------- EC2 ----------------------

struct Ec2Rig {
    client: aws_sdk_ec2::Client,
    fleet: Ec2Fleet<SdkEc2>,
    cluster: String,
    pool: PoolConfig,
}

async fn ec2_rig(page_size: i32) -> Ec2Rig {
    let conf = conf().await;
    let client = aws_sdk_ec2::Client::new(&conf);
    let cluster = unique("c");
    let vpc = client
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .expect("vpc");
    let vpc_id = vpc
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("vpc id")
        .to_owned();
    let subnet = client
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block("10.0.1.0/24")
        .availability_zone("us-east-1a")
        .send()
        .await
        .expect("subnet");
    let subnet_id = subnet
        .subnet()
        .and_then(|s| s.subnet_id())
        .expect("subnet id")
        .to_owned();
    let sg = client
        .create_security_group()
        .group_name(unique("sg"))
        .description("runners")
        .vpc_id(&vpc_id)
        .send()
        .await
        .expect("sg");
    let image = client
        .register_image()
        .name(unique("ami"))
        .root_device_name("/dev/xvda")
        .send()
        .await
        .expect("ami");
    let pool = PoolConfig {
        instance_types: vec!["c7a.large".into(), "m7a.large".into()],
        subnets: vec![subnet_id],
        security_groups: vec![sg.group_id().expect("sg id").to_owned()],
        ami: image.image_id().expect("ami id").to_owned(),
        instance_profile: None,
        market: Market::Spot,
        max_instances: 50,
        volume_size_gb: 40,
        extra_labels: vec![],
        max_lifetime: None,
        warm: None,
        hourly_price: None,
    };
    let settings = Ec2Settings {
        call: CallPolicy::fast(),
        page_size,
        ..Ec2Settings::default()
    };
    let fleet = Ec2Fleet::with_settings(
        SdkEc2::new(client.clone()),
        &cluster,
        settings,
        std::sync::Arc::new(controller::clock::SystemClock),
    );
    Ec2Rig {
        client,
        fleet,
        cluster,
        pool,
    }
}

#[path = "contract/fleet.rs"]
#[macro_use]
mod fleet_contract;

use fleet_contract::{launch_req, FleetRig, USER_DATA};

#[async_trait::async_trait]
impl FleetRig for Ec2Rig {
    fn fleet(&self) -> &dyn Fleet {
        &self.fleet
    }

    fn cluster(&self) -> &str {
        &self.cluster
    }

    fn pool(&self) -> PoolConfig {
        self.pool.clone()
    }

    async fn start_foreign(&self, cluster: Option<&str>) -> InstanceId {
        let spec = cluster.map(|c| {
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(Tag::builder().key(tags::CLUSTER).value(c).build())
                .tags(
                    Tag::builder()
                        .key(tags::RUNNER_NAME)
                        .value(format!("tq-{c}-job-1-1-a1"))
                        .build(),
                )
                .build()
        });
        let out = self
            .client
            .run_instances()
            .image_id(&self.pool.ami)
            .min_count(1)
            .max_count(1)
            .subnet_id(&self.pool.subnets[0])
            .set_tag_specifications(spec.map(|s| vec![s]))
            .send()
            .await
            .expect("foreign instance");
        InstanceId::new(out.instances()[0].instance_id().expect("instance id"))
    }
}

/// The fleet port's contract (`tests/contract/fleet.rs`) on EC2; the tests' fake passes the
/// same clauses (`tests/fleet_contract.rs`).
mod fleet_port {
    fleet_contract!(super::ec2_rig(1000).await);
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

#[tokio::test]
async fn a_launched_instance_carries_our_tags_imdsv2_and_the_user_data() {
    let rig = ec2_rig(1000).await;
    let req = launch_req(&rig, 1);
    let (instance, offering) = rig.fleet.launch(&req).await.expect("launch");
    assert_eq!(offering.lifecycle, Lifecycle::Spot);
    assert_eq!(offering.instance_type, "c7a.large");

    let desc = rig
        .client
        .describe_instances()
        .instance_ids(instance.id.as_str())
        .send()
        .await
        .expect("describe");
    let i = desc.reservations()[0].instances()[0].clone();
    let tags = tag_map(i.tags());
    assert_eq!(tags.get(tags::CLUSTER), Some(&rig.cluster));
    assert_eq!(
        tags.get(tags::RUNNER_NAME).map(String::as_str),
        Some(req.runner.as_str())
    );
    assert_eq!(tags.get(tags::RUN_ID).map(String::as_str), Some("job-1-1"));
    assert_eq!(tags.get(tags::POOL).map(String::as_str), Some("go"));
    assert_eq!(tags.get(tags::ATTEMPT).map(String::as_str), Some("1"));
    assert_eq!(
        tags.get(tags::NAME).map(String::as_str),
        Some(req.runner.as_str())
    );
    assert_eq!(i.instance_lifecycle().map(|l| l.as_str()), Some("spot"));
    let md = i.metadata_options().expect("metadata options");
    assert_eq!(md.http_tokens().map(|t| t.as_str()), Some("required"));
    assert_eq!(md.http_put_response_hop_limit(), Some(1));
    assert_eq!(i.subnet_id(), Some(rig.pool.subnets[0].as_str()));
    assert!(i
        .security_groups()
        .iter()
        .any(|g| g.group_id() == Some(rig.pool.security_groups[0].as_str())));

    let attr = rig
        .client
        .describe_instance_attribute()
        .instance_id(instance.id.as_str())
        .attribute(InstanceAttributeName::UserData)
        .send()
        .await
        .expect("user data");
    let encoded = attr
        .user_data()
        .and_then(|u| u.value())
        .expect("user data set");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    assert_eq!(decoded, USER_DATA.as_bytes());

    let shutdown = rig
        .client
        .describe_instance_attribute()
        .instance_id(instance.id.as_str())
        .attribute(InstanceAttributeName::InstanceInitiatedShutdownBehavior)
        .send()
        .await
        .expect("shutdown behaviour");
    assert_eq!(
        shutdown
            .instance_initiated_shutdown_behavior()
            .and_then(|v| v.value()),
        Some("terminate")
    );

    let volumes = rig
        .client
        .describe_volumes()
        .filters(
            Filter::builder()
                .name("attachment.instance-id")
                .values(instance.id.as_str())
                .build(),
        )
        .send()
        .await
        .expect("volumes");
    assert!(!volumes.volumes().is_empty(), "the instance has a volume");
    for v in volumes.volumes() {
        assert_eq!(
            tag_map(v.tags()).get(tags::CLUSTER),
            Some(&rig.cluster),
            "volumes are tagged too"
        );
    }

    let listed = rig.fleet.list().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, instance.id);
    assert_eq!(listed[0].runner_name().as_ref(), Some(&req.runner));
    assert_eq!(listed[0].lifecycle, Lifecycle::Spot);
    assert_eq!(listed[0].zone, "us-east-1a");
}

#[tokio::test]
async fn list_reads_every_page() {
    let rig = ec2_rig(5).await;
    let mut launched = Vec::new();
    for job in 0..12 {
        launched.push(
            rig.fleet
                .launch(&launch_req(&rig, job))
                .await
                .expect("launch")
                .0
                .id,
        );
    }
    let before = rig.fleet.api_calls();
    let mut listed: Vec<InstanceId> = rig
        .fleet
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|i| i.id)
        .collect();
    listed.sort();
    launched.sort();
    assert_eq!(listed, launched);
    assert_eq!(
        rig.fleet.api_calls() - before,
        3,
        "12 reservations in pages of 5"
    );
}

#[tokio::test]
async fn the_store_init_command_sets_up_the_table_and_is_safe_to_run_again() {
    conf().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let table = unique("cli-runs");
    let config = model::config::EXAMPLE.replace("table: tinqs-ci-runs", &format!("table: {table}"));
    assert!(
        config.contains(&table),
        "the example config names its table as expected"
    );
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).expect("write config");
    let run_init = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tinqs-ci"))
            .args(["store", "init", "--config"])
            .arg(&path)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("run tinqs-ci")
    };
    let first = run_init();
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(out.contains(&format!("table {table}: created")), "{out}");
    let second = run_init();
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(
        second.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(out.contains("already set up"), "{out}");
}

// ---- EC2's notices over SQS ------------------------------------------------------------

fn ec2_event(detail_type: &str, instance: &str) -> String {
    // The shape EventBridge delivers (EC2 user guide, "Spot Instance interruption notices").
    format!(
        r#"{{"version":"0","id":"{}","detail-type":"{detail_type}","source":"aws.ec2","account":"123456789012","time":"2026-12-04T14:00:00Z","region":"us-east-1","resources":["arn:aws:ec2:us-east-1:123456789012:instance/{instance}"],"detail":{{"instance-id":"{instance}","instance-action":"terminate"}}}}"#,
        uuid::Uuid::new_v4()
    )
}

#[tokio::test]
async fn notices_are_received_from_sqs_recorded_once_and_deleted() {
    use controller::notices::{NoticeBook, NoticeReceiver, SqsQueue};
    let sqs = aws_sdk_sqs::Client::new(&conf().await);
    let url = sqs
        .create_queue()
        .queue_name(unique("tinqs-events"))
        .send()
        .await
        .expect("queue")
        .queue_url()
        .expect("url")
        .to_owned();
    let warning = ec2_event(model::notice::INTERRUPTION_WARNING, "i-0123456789abcdef0");
    for body in [
        warning.clone(),
        warning.replace("\"id\":\"", "\"id\":\"again-"), // redelivered by EventBridge
        ec2_event(
            model::notice::REBALANCE_RECOMMENDATION,
            "i-0fedcba9876543210",
        ),
        ec2_event(
            "EC2 Instance State-change Notification",
            "i-0123456789abcdef0",
        ),
        "garbage".to_owned(),
    ] {
        sqs.send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await
            .expect("send");
    }
    let queue = SqsQueue::new(sqs.clone(), &url);
    assert_eq!(queue.depth().await, Ok(5));
    let book = NoticeBook::default();
    let receiver = NoticeReceiver::new(std::sync::Arc::new(queue), book.clone());
    let got = receiver.drain().await.expect("drain");
    assert_eq!(
        (
            got.messages,
            got.new,
            got.duplicates,
            got.ignored,
            got.malformed
        ),
        (5, 2, 1, 1, 1)
    );
    let mut seen: Vec<(String, model::notice::NoticeKind)> = book
        .snapshot()
        .into_iter()
        .map(|n| (n.instance.to_string(), n.kind))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (
                "i-0123456789abcdef0".to_owned(),
                model::notice::NoticeKind::InterruptionWarning
            ),
            (
                "i-0fedcba9876543210".to_owned(),
                model::notice::NoticeKind::RebalanceRecommendation
            ),
        ]
    );
    let queue = SqsQueue::new(sqs, &url);
    assert_eq!(queue.depth().await, Ok(0), "every message was deleted");
}

#[tokio::test]
async fn a_missing_events_queue_is_an_error_naming_sqs() {
    use controller::notices::{NoticeBook, NoticeReceiver, SqsQueue};
    let sqs = aws_sdk_sqs::Client::new(&conf().await);
    let url = format!(
        "{}/123456789012/{}",
        std::env::var("TINQS_TEST_MOTO_URL").unwrap_or_default(),
        unique("absent")
    );
    let receiver = NoticeReceiver::new(
        std::sync::Arc::new(SqsQueue::new(sqs, &url)),
        NoticeBook::default(),
    );
    let e = receiver.drain().await.expect_err("no such queue");
    assert!(e.starts_with("SQS"), "{e}");
}
