//! `tinqs-ci doctor`'s AWS checks against moto, through the real AWS SDK.
//!
//! Run under `scripts/with-moto.sh` (as `make test` does): it starts moto on a loopback port
//! and exports `TINQS_TEST_MOTO_URL`, `AWS_ENDPOINT_URL`, test credentials and the region.
//! Every test uses its own table and cluster id.
//!
//! Moto answers `DryRunOperation` to every dry run and never refuses a permission, so the
//! refusals are tested with the scripted EC2 in `cli_ops.rs`.

use std::time::Duration;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use controller::cmd::doctor::{self, Check, Verdict};
use controller::store::dynamo::DynamoStore;
use controller::store::schema;
use model::config::{Config, Market, PoolConfig};

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

/// A VPC, subnet, security group and AMI in moto, and a configuration with one pool on them.
async fn world(conf: &aws_config::SdkConfig) -> (aws_sdk_ec2::Client, Config) {
    let ec2 = aws_sdk_ec2::Client::new(conf);
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.1.0.0/16")
        .send()
        .await
        .expect("vpc");
    let vpc_id = vpc
        .vpc()
        .and_then(|v| v.vpc_id())
        .expect("vpc id")
        .to_owned();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block("10.1.1.0/24")
        .availability_zone("us-east-1a")
        .send()
        .await
        .expect("subnet");
    let sg = ec2
        .create_security_group()
        .group_name(unique("sg"))
        .description("runners")
        .vpc_id(&vpc_id)
        .send()
        .await
        .expect("sg");
    let image = ec2
        .register_image()
        .name(unique("ami"))
        .root_device_name("/dev/xvda")
        .send()
        .await
        .expect("ami");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/config.yaml"
    ))
    .expect("example config");
    let mut config = Config::parse(&text).expect("valid");
    config.cluster_id = unique("dr");
    config.store.table = unique("runs");
    config.pools.clear();
    config.pools.insert(
        "go".into(),
        PoolConfig {
            instance_types: vec!["c7a.large".into()],
            subnets: vec![subnet
                .subnet()
                .and_then(|s| s.subnet_id())
                .expect("subnet id")
                .to_owned()],
            security_groups: vec![sg.group_id().expect("sg id").to_owned()],
            ami: image.image_id().expect("ami id").to_owned(),
            instance_profile: None,
            market: Market::Spot,
            max_instances: 5,
            volume_size_gb: 30,
            extra_labels: vec![],
            max_lifetime: None,
            warm: None,
            hourly_price: None,
        },
    );
    (ec2, config)
}

async fn init_table(conf: &aws_config::SdkConfig, config: &Config) {
    DynamoStore::from_conf(conf, &config.store)
        .init_table(Duration::from_secs(30))
        .await
        .expect("store init");
}

fn verdicts(checks: &[Check]) -> Vec<(&str, Verdict)> {
    checks
        .iter()
        .map(|c| (c.name.as_str(), c.verdict))
        .collect()
}

#[tokio::test]
async fn doctor_passes_a_set_up_account_and_changes_nothing_in_it() {
    let conf = conf().await;
    let (ec2, config) = world(&conf).await;
    init_table(&conf, &config).await;

    let checks = doctor::check_aws(&conf, &config, &controller::clock::SystemClock).await;
    assert_eq!(
        verdicts(&checks),
        [
            ("aws credentials", Verdict::Ok),
            ("ec2 DescribeInstances", Verdict::Ok),
            ("ec2 AMI (pool go)", Verdict::Ok),
            ("ec2 RunInstances (pool go)", Verdict::Ok),
            ("ec2 TerminateInstances", Verdict::Skipped),
            ("dynamodb table", Verdict::Ok),
            ("dynamodb index", Verdict::Ok),
            ("dynamodb TTL", Verdict::Ok),
            ("dynamodb read", Verdict::Ok),
            ("dynamodb lease", Verdict::Ok),
            ("dynamodb write: PutItem", Verdict::Ok),
            ("dynamodb write: UpdateItem", Verdict::Ok),
        ],
        "{}",
        doctor::text(&checks)
    );
    assert!(doctor::all_passed(&checks));
    assert!(checks[0].detail.contains("region us-east-1"));
    assert!(
        !doctor::text(&checks).contains("testing"),
        "no credential is printed"
    );

    // The dry runs started nothing, and the write probes wrote nothing.
    let listed = ec2
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:tinqs-ci:cluster")
                .values(&config.cluster_id)
                .build(),
        )
        .send()
        .await
        .expect("describe");
    assert!(listed.reservations().is_empty(), "{listed:?}");
    let scan = aws_sdk_dynamodb::Client::new(&conf)
        .scan()
        .table_name(&config.store.table)
        .send()
        .await
        .expect("scan");
    assert_eq!(scan.count(), 0, "{:?}", scan.items());
}

#[tokio::test]
async fn doctor_dry_runs_terminate_on_a_live_instance_of_ours_and_leaves_it_running() {
    let conf = conf().await;
    let (ec2, config) = world(&conf).await;
    init_table(&conf, &config).await;
    let pool = &config.pools["go"];
    let tags = TagSpecification::builder()
        .resource_type(ResourceType::Instance)
        .tags(
            Tag::builder()
                .key("tinqs-ci:cluster")
                .value(&config.cluster_id)
                .build(),
        )
        .build();
    let started = ec2
        .run_instances()
        .image_id(&pool.ami)
        .min_count(1)
        .max_count(1)
        .subnet_id(&pool.subnets[0])
        .tag_specifications(tags)
        .send()
        .await
        .expect("run");
    let id = started.instances()[0].instance_id().expect("id").to_owned();

    let checks =
        doctor::check_ec2(&controller::fleet::ec2::SdkEc2::new(ec2.clone()), &config).await;
    let terminate = checks
        .iter()
        .find(|c| c.name == "ec2 TerminateInstances")
        .expect("check");
    assert_eq!(terminate.verdict, Verdict::Ok, "{terminate:?}");
    assert!(terminate.detail.contains(&id));

    let state = ec2
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .expect("describe");
    let name = state.reservations()[0].instances()[0]
        .state()
        .and_then(|s| s.name())
        .cloned();
    assert_eq!(name, Some(aws_sdk_ec2::types::InstanceStateName::Running));
}

#[tokio::test]
async fn doctor_reports_a_missing_table_with_store_init_as_the_fix() {
    let conf = conf().await;
    let table = unique("absent");
    let checks = doctor::check_table(&aws_sdk_dynamodb::Client::new(&conf), &table).await;
    assert_eq!(verdicts(&checks), [("dynamodb table", Verdict::Problem)]);
    assert!(checks[0].detail.contains(&table));
    assert!(checks[0]
        .fix
        .as_deref()
        .is_some_and(|f| f.contains("tinqs-ci store init")));
}

#[tokio::test]
async fn doctor_reports_a_table_without_the_active_runs_index() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let conf = conf().await;
    let client = aws_sdk_dynamodb::Client::new(&conf);
    let table = unique("noindex");
    client
        .create_table()
        .table_name(&table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(schema::PK)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("def"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(schema::PK)
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create");
    let checks = doctor::check_table(&client, &table).await;
    let index = checks
        .iter()
        .find(|c| c.name == "dynamodb index")
        .expect("index check");
    assert!(index.is_problem(), "{}", doctor::text(&checks));
    let read = checks
        .iter()
        .find(|c| c.name == "dynamodb read")
        .expect("read check");
    assert!(read.is_problem(), "{}", doctor::text(&checks));
    assert!(checks
        .iter()
        .any(|c| c.name == "dynamodb TTL" && c.is_problem()));
}

#[tokio::test]
async fn doctor_reports_an_ami_moto_does_not_know() {
    let conf = conf().await;
    let (_ec2, mut config) = world(&conf).await;
    if let Some(pool) = config.pools.get_mut("go") {
        pool.ami = "ami-00000000000000000".into();
    }
    let checks =
        doctor::check_ec2(&controller::fleet::ec2::SdkEc2::from_conf(&conf), &config).await;
    let ami = checks
        .iter()
        .find(|c| c.name == "ec2 AMI (pool go)")
        .expect("check");
    assert!(ami.is_problem(), "{}", doctor::text(&checks));
    assert!(!checks
        .iter()
        .any(|c| c.name == "ec2 RunInstances (pool go)"));
}
