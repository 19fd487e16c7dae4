//! The EC2 checks: permissions probed with `DryRun` requests, per pool.

use aws_sdk_ec2::operation::describe_images::builders::DescribeImagesInputBuilder;
use aws_sdk_ec2::operation::describe_instances::builders::DescribeInstancesInputBuilder;
use aws_sdk_ec2::operation::terminate_instances::builders::TerminateInstancesInputBuilder;
use aws_sdk_ec2::types::Filter;
use model::config::Config;
use model::secret::Secret;
use model::{tags, InstanceId, RunId, RunnerName};

use crate::fleet::ec2::{map_instance, run_input, Ec2Api};
use crate::fleet::{offerings, LaunchRequest};

use super::aws::{aws_problem, describe, is_bad_credentials, is_denied, probe};
use super::check::Check;

/// EC2: `DescribeInstances` (our cluster's instances), and per pool `DescribeImages` of its
/// AMI and a `RunInstances` dry run in its first subnet with its first instance type and
/// market, carrying the ownership tags (the IAM policy allows launches only with them); then
/// a `TerminateInstances` dry run on one of our instances, when one exists.
///
/// If EC2 ever ignored `DryRun` and started an instance, it is terminated at once and
/// reported.
pub async fn check_ec2(api: &dyn Ec2Api, config: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    let filter = Filter::builder()
        .name(format!("tag:{}", tags::CLUSTER))
        .values(&config.cluster_id)
        .build();
    let listed = probe(
        api.describe_instances(
            DescribeInstancesInputBuilder::default()
                .filters(filter)
                .max_results(5),
        ),
    )
    .await;
    let mut ours: Option<InstanceId> = None;
    match listed {
        Ok(page) => {
            let instances: Vec<_> = page
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .filter_map(|i| map_instance(i).ok())
                .filter(|i| i.is_ours(&config.cluster_id))
                .collect();
            ours = instances
                .iter()
                .find(|i| i.state.is_live())
                .map(|i| i.id.clone());
            out.push(Check::ok(
                "ec2 DescribeInstances",
                format!(
                    "permitted; {} instance{} of cluster {} on the first page",
                    instances.len(),
                    if instances.len() == 1 { "" } else { "s" },
                    config.cluster_id
                ),
            ));
        }
        Err(e) => {
            out.push(aws_problem(
                "ec2 DescribeInstances",
                "ec2:DescribeInstances",
                &e,
            ));
            if is_bad_credentials(&e) || e.code().is_empty() {
                out.push(Check::skipped(
                    "ec2 launch and terminate",
                    "EC2 cannot be used at all",
                ));
                return out;
            }
        }
    }
    for (pool, pool_config) in &config.pools {
        out.extend(check_pool(api, config, pool, pool_config).await);
    }
    out.push(match ours {
        None => Check::skipped(
            "ec2 TerminateInstances",
            format!(
                "no live instance of cluster {} to dry-run against; the policy's tag condition is checked on the first real termination",
                config.cluster_id
            ),
        ),
        Some(id) => {
            let input = TerminateInstancesInputBuilder::default().instance_ids(id.as_str()).dry_run(true);
            match probe(api.terminate_instances(input)).await {
                Err(e) if e.code() == "DryRunOperation" => Check::ok(
                    "ec2 TerminateInstances",
                    format!("permitted on our instance {id} (dry run; nothing was terminated)"),
                ),
                Err(e) => aws_problem("ec2 TerminateInstances", "ec2:TerminateInstances on instances tagged with our cluster", &e),
                Ok(_) => Check::problem(
                    "ec2 TerminateInstances",
                    format!("EC2 ignored DryRun and terminated {id}, an instance of this cluster; the next pass repairs its run"),
                    "check AWS_ENDPOINT_URL: real EC2 honours DryRun",
                ),
            }
        }
    });
    out
}

async fn check_pool(
    api: &dyn Ec2Api,
    config: &Config,
    pool: &str,
    pool_config: &model::config::PoolConfig,
) -> Vec<Check> {
    let mut out = Vec::new();
    let images = probe(
        api.describe_images(DescribeImagesInputBuilder::default().image_ids(&pool_config.ami)),
    )
    .await;
    let ami_name = format!("ec2 AMI (pool {pool})");
    let root_device = match images {
        Ok(o) => match o
            .images()
            .iter()
            .find(|i| i.image_id() == Some(pool_config.ami.as_str()))
        {
            Some(image) => {
                let device = image.root_device_name().unwrap_or("/dev/xvda").to_owned();
                out.push(Check::ok(
                    ami_name,
                    format!("{} exists (root device {device})", pool_config.ami),
                ));
                device
            }
            None => {
                out.push(Check::problem(
                    ami_name,
                    format!("{} is not visible to this account in this region", pool_config.ami),
                    format!(
                        "build or copy the runner AMI into this region (ami/), or share it with this account, and set pools.{pool}.ami"
                    ),
                ));
                return out;
            }
        },
        Err(e) if e.code().starts_with("InvalidAMIID") => {
            out.push(Check::problem(
                ami_name,
                describe(&e),
                format!("set pools.{pool}.ami to an AMI id of this region (ami-…)"),
            ));
            return out;
        }
        Err(e) => {
            out.push(aws_problem(&ami_name, "ec2:DescribeImages", &e));
            return out;
        }
    };
    let name = format!("ec2 RunInstances (pool {pool})");
    let Some(offering) = offerings(pool_config).into_iter().next() else {
        out.push(Check::problem(
            name,
            "the pool has no instance type or subnet",
            format!("list pools.{pool}.instance_types and pools.{pool}.subnets"),
        ));
        return out;
    };
    let Ok(run) = RunId::for_operator("doctor") else {
        return out;
    };
    let req = LaunchRequest {
        run: run.clone(),
        attempt: 1,
        runner: RunnerName::new(&config.cluster_id, &run, 1),
        pool: pool.to_owned(),
        pool_config: pool_config.clone(),
        user_data: Secret::new("#!/bin/sh\n# tinqs-ci doctor: dry run, never started\npoweroff\n"),
        client_token: format!("tinqs-doctor-{}", uuid::Uuid::new_v4().simple()),
        runner_id: None,
    };
    let input = run_input(
        &config.cluster_id,
        &req,
        &offering,
        &req.client_token,
        &root_device,
    )
    .dry_run(true);
    let what = format!("{offering}, tagged, IMDSv2");
    match probe(api.run_instances(input)).await {
        Err(e) if e.code() == "DryRunOperation" => {
            out.push(Check::ok(
                name,
                format!("permitted: {what} (dry run; nothing was started)"),
            ));
        }
        Err(e) if is_denied(&e) => {
            let profile = if pool_config.instance_profile.is_some() {
                ", iam:PassRole on the runner role"
            } else {
                ""
            };
            out.push(aws_problem(
                &name,
                &format!("ec2:RunInstances and ec2:CreateTags with the tinqs-ci:cluster = {} condition{profile}", config.cluster_id),
                &e,
            ));
        }
        Err(e) if e.code().starts_with("InvalidSubnet") => out.push(Check::problem(
            name,
            describe(&e),
            format!("set pools.{pool}.subnets to subnets of this region"),
        )),
        Err(e)
            if e.code().starts_with("InvalidGroup")
                || e.code().starts_with("InvalidSecurityGroup") =>
        {
            out.push(Check::problem(
                name,
                describe(&e),
                format!("set pools.{pool}.security_groups to groups of the subnets' VPC"),
            ));
        }
        Err(e) if e.code().contains("InstanceType") || e.code() == "Unsupported" => {
            out.push(Check::problem(
                name,
                describe(&e),
                format!(
                    "pools.{pool}.instance_types[0] ({}) is not offered in that subnet's zone",
                    offering.instance_type
                ),
            ))
        }
        Err(e) if e.code().contains("IamInstanceProfile") => out.push(Check::problem(
            name,
            describe(&e),
            format!("pools.{pool}.instance_profile must name an existing instance profile"),
        )),
        Err(e) => out.push(aws_problem(&name, "ec2:RunInstances", &e)),
        Ok(started) => {
            let ids: Vec<String> = started
                .instances()
                .iter()
                .filter_map(|i| i.instance_id().map(str::to_owned))
                .collect();
            if !ids.is_empty() {
                let input =
                    TerminateInstancesInputBuilder::default().set_instance_ids(Some(ids.clone()));
                let _ = probe(api.terminate_instances(input)).await;
            }
            out.push(Check::problem(
                name,
                format!(
                    "EC2 ignored DryRun and started {}; it was terminated again",
                    ids.join(", ")
                ),
                "check AWS_ENDPOINT_URL: real EC2 honours DryRun",
            ));
        }
    }
    out
}
