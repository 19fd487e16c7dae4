//! Listing and planning at scale against moto: `make bench-aws`.
//!
//! Fills moto with 5,000 tagged instances (one RunInstances call each, so one reservation
//! each, as the controller launches them) and 5,000 desired runs, then times full passes:
//! read the active runs (DynamoDB Query, all pages), list our instances (DescribeInstances,
//! all pages), and plan over them with `model::plan`. Prints the API calls and the time of
//! each step per pass. Sizes can be changed with `TINQS_BENCH_INSTANCES`, `TINQS_BENCH_RUNS`
//! and `TINQS_BENCH_PASSES` (default 1); moto's URL comes from `TINQS_TEST_MOTO_URL`
//! (scripts/with-moto.sh).
//!
//! Moto answers far slower than EC2 and DynamoDB, so the times are an upper bound on our own
//! cost plus moto's; the call counts are what AWS would see. Moto's DescribeInstances slows
//! down steeply with the number of instances: with 5,000 one page of 1,000 takes minutes, so
//! the default run (5 minutes of setup, one pass) takes about 20 minutes.
//!
//! Under `cargo test` (no `--bench` argument, e.g. `scripts/with-moto.sh cargo test -p
//! tinqs-ci --bench aws`) it runs as a smoke test instead: 20 instances, 20 runs, one pass.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use controller::aws::CallPolicy;
use controller::fleet::ec2::{Ec2Fleet, Ec2Settings, SdkEc2};
use controller::fleet::{Fleet, LaunchRequest};
use controller::store::dynamo::DynamoStore;
use controller::store::{schema, Store};
use futures::stream::{self, StreamExt, TryStreamExt};
use model::config::{Config, Market, PoolConfig, EXAMPLE};
use model::desired::{DesiredRun, JobRef, JobState, Origin, Phase, RunSpec};
use model::observed::{ForgeRunner, Instance, Observed, Seen};
use model::secret::Secret;
use model::{plan, Policy, RunId, RunnerName, Timestamp};

const SMOKE: usize = 20;

fn env_size(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name}={v} is not a count")),
    }
}

/// Moto needs tens of seconds for a DescribeInstances page of 1,000 instances out of 5,000; the
/// default 20 s per attempt is for AWS, so the benchmark waits longer.
fn moto_calls() -> CallPolicy {
    CallPolicy {
        timeout: Duration::from_secs(600),
        ..CallPolicy::default()
    }
}

fn now() -> Timestamp {
    Timestamp::from_system(SystemTime::now())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test` does not, and gets the smoke run.
    let full = std::env::args().any(|a| a == "--bench");
    match run(full).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-aws: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(full: bool) -> anyhow::Result<()> {
    let conf = controller::aws::moto::config()
        .await
        .context("refusing to run: `make bench-aws` starts moto")?;
    let (n_instances, n_runs, passes) = if full {
        (
            env_size("TINQS_BENCH_INSTANCES", 5000)?,
            env_size("TINQS_BENCH_RUNS", 5000)?,
            env_size("TINQS_BENCH_PASSES", 1)?,
        )
    } else {
        (SMOKE, SMOKE, 1)
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let cluster = format!("bench-{}", &id[..8]);
    let config =
        Config::parse(&EXAMPLE.replace("cluster_id: demo", &format!("cluster_id: {cluster}")))
            .context("example config")?;
    let policy = Policy::from_config(&config, true);
    let profile = if cfg!(debug_assertions) {
        "debug build"
    } else {
        "optimised build"
    };
    println!("bench-aws: {n_instances} instances, {n_runs} runs, cluster {cluster}, {profile}");

    // ---- EC2 fixture ----
    let ec2 = aws_sdk_ec2::Client::new(&conf);
    let vpc = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await?;
    let vpc_id = vpc
        .vpc()
        .and_then(|v| v.vpc_id())
        .context("vpc id")?
        .to_owned();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block("10.0.0.0/17")
        .availability_zone("us-east-1a")
        .send()
        .await?;
    let subnet_id = subnet
        .subnet()
        .and_then(|s| s.subnet_id())
        .context("subnet id")?
        .to_owned();
    let image = ec2
        .register_image()
        .name(format!("bench-{id}"))
        .root_device_name("/dev/xvda")
        .send()
        .await?;
    let pool = PoolConfig {
        instance_types: vec!["c7a.large".into()],
        subnets: vec![subnet_id],
        security_groups: vec![],
        ami: image.image_id().context("ami id")?.to_owned(),
        instance_profile: None,
        market: Market::Spot,
        max_instances: u32::MAX,
        volume_size_gb: 30,
        extra_labels: vec!["linux".into()],
        max_lifetime: None,
        warm: None,
        hourly_price: None,
    };
    let fleet = Ec2Fleet::with_settings(
        SdkEc2::new(ec2.clone()),
        &cluster,
        Ec2Settings {
            call: moto_calls(),
            ..Ec2Settings::default()
        },
        std::sync::Arc::new(controller::clock::SystemClock),
    );
    let started = Instant::now();
    let launched: Vec<(usize, Instance)> = stream::iter(0..n_instances)
        .map(|i| {
            let (fleet, pool, cluster) = (&fleet, &pool, &cluster);
            async move {
                let run = RunId::for_job(i64::try_from(i)?, 1);
                let req = LaunchRequest {
                    runner: RunnerName::new(cluster, &run, 1),
                    client_token: model::ids::client_token(cluster, &run, 1),
                    runner_id: None,
                    run,
                    attempt: 1,
                    pool: "go".into(),
                    pool_config: pool.clone(),
                    user_data: Secret::new("#!/bin/sh\ntrue\n"),
                };
                let (instance, _) = fleet
                    .launch(&req)
                    .await
                    .with_context(|| format!("launch {i}"))?;
                anyhow::Ok((i, instance))
            }
        })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    println!(
        "setup: {n_instances} instances launched in {}",
        ms(started.elapsed())
    );

    // ---- DynamoDB fixture ----
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let store = DynamoStore::with_policy(
        ddb.clone(),
        &format!("bench-{id}"),
        Duration::from_secs(3600),
        moto_calls(),
    );
    store.init_table(Duration::from_secs(60)).await?;
    let instance_of: HashMap<usize, &Instance> =
        launched.iter().map(|(i, inst)| (*i, inst)).collect();
    let created = now();
    let runs: Vec<DesiredRun> = (0..n_runs)
        .map(|i| {
            let job = i64::try_from(i).unwrap_or(i64::MAX);
            let spec = RunSpec::for_job(
                JobRef {
                    id: job,
                    attempt: 1,
                    name: Some("build".into()),
                    run_id: Some(job / 4),
                },
                vec!["go".into(), "linux".into()],
                Some("acme/app".into()),
                Origin::Webhook,
                created,
            );
            let mut run = DesiredRun::new(RunId::for_job(job, 1), spec);
            if let Some(inst) = instance_of.get(&i) {
                run.spec.job_state = JobState::InProgress {
                    runner: Some(run.runner_name(&cluster).to_string()),
                };
                run.status.phase = Phase::Running;
                run.status.instance_id = Some(inst.id.clone());
                run.status.runner_name = Some(run.runner_name(&cluster));
                run.status.claimed_at = Some(created);
                run.status.launched_at = Some(inst.launched_at);
                run.status.registered_at = Some(created);
                run.status.runner_id = Some(job + 1);
            }
            run
        })
        .collect();
    let started = Instant::now();
    let table = store.table().to_owned();
    stream::iter(runs.chunks(25))
        .map(|chunk| {
            let requests: anyhow::Result<Vec<WriteRequest>> = chunk
                .iter()
                .map(|r| {
                    let put = PutRequest::builder()
                        .set_item(Some(schema::encode(r, None)))
                        .build()?;
                    anyhow::Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect();
            let (ddb, table) = (&ddb, &table);
            async move {
                let out = ddb
                    .batch_write_item()
                    .request_items(table.clone(), requests?)
                    .send()
                    .await?;
                if out.unprocessed_items().is_some_and(|u| !u.is_empty()) {
                    bail!("moto left items unprocessed");
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await?;
    println!("setup: {n_runs} runs written in {}", ms(started.elapsed()));

    // Gitea's side, steady state: every launched runner online and busy.
    let runners: Vec<ForgeRunner> = runs
        .iter()
        .filter(|r| r.status.instance_id.is_some())
        .map(|r| ForgeRunner {
            id: r.status.runner_id.unwrap_or_default(),
            name: r.runner_name(&cluster).to_string(),
            online: true,
            busy: true,
            labels: vec!["go".into(), "linux".into()],
            ephemeral: true,
            disabled: false,
        })
        .collect();

    // ---- passes ----
    for pass in 1..=passes {
        let (ddb0, ec20) = (store.api_calls(), fleet.api_calls());
        let t0 = Instant::now();
        let view = store.list_active().await.context("list active runs")?;
        let t1 = Instant::now();
        let instances = fleet.list().await.context("list instances")?;
        let t2 = Instant::now();
        let observed = Observed {
            instances: Seen::Complete { items: instances },
            runners: Seen::Complete {
                items: runners.clone(),
            },
            queued_jobs: Seen::Unavailable,
            jobs_read: Vec::new(),
            notices: Vec::new(),
            disabled_since: std::collections::BTreeMap::new(),
            instances_read_at: None,
            pools_without_capacity: std::collections::BTreeMap::new(),
        };
        let planned = plan(&view, &observed, &policy, now());
        let t3 = Instant::now();
        if view.runs.len() != n_runs || observed.instances.items().len() != n_instances {
            bail!(
                "pass {pass} saw {} runs and {} instances, expected {n_runs} and {n_instances}",
                view.runs.len(),
                observed.instances.items().len()
            );
        }
        println!(
            "pass {pass}: runs {} ({} Query calls), instances {} ({} DescribeInstances calls), plan {} ({} actions), total {}",
            ms(t1 - t0),
            store.api_calls() - ddb0,
            ms(t2 - t1),
            fleet.api_calls() - ec20,
            ms(t3 - t2),
            planned.actions.len(),
            ms(t3 - t0),
        );
    }
    Ok(())
}
