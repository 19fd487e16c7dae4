#!/usr/bin/env python3
"""Deploys deploy/tinqs-ci.yaml into moto's CloudFormation and checks what it made.

Run under scripts/with-moto.sh with the project's venv (tests/shell/deploy.bats does):
    scripts/with-moto.sh .venv/bin/python tests/deploy/check_stack.py

It creates what an account would already have (a VPC, two subnets, AMIs, the two secrets in
SSM Parameter Store, the artifact bucket with a pools file), starts the Gitea simulator, creates
the stack, and then checks:
  - the table, its index and TTL against wiki/DevOps-Reference.md's create-table input (which
    a Rust test keeps equal to what `tinqs-ci store init` creates);
  - the queue, both EventBridge rules, and that EC2-shaped events put on the bus arrive in the
    queue (and an unrelated EC2 event does not); the queue policy lets only these rules'
    events.amazonaws.com deliveries send;
  - the controller's role holds the policy of wiki/DevOps-Reference.md with its placeholders
    filled in, plus the queue, secrets and release statements and nothing else; the runner
    instance profile; the security groups; the cache bucket and its lifecycle rule;
  - the controller instance (type, subnet, AMI, profile, tags), and its user data: shellcheck
    passes on it and on the secrets script it installs, no secret value is in it, and the
    configuration it writes (rendered here by the user data's own lines) passes
    `tinqs-ci doctor` against moto and the Gitea simulator with exit 0;
  - deleting the stack terminates the controller and keeps the table.

Where moto's CloudFormation ignores a property (DynamoDB TimeToLiveSpecification, S3
LifecycleConfiguration, EC2 instance MetadataOptions) or a resource (SQS QueuePolicy), the
template's own property is checked instead, and the TTL is applied the way CloudFormation would,
so that doctor can judge the table. Each such step prints `moto gap:`.
"""

import ast
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import boto3
from cfnlint.decode import cfn_yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TEMPLATE = os.path.join(ROOT, "deploy", "tinqs-ci.yaml")
REFERENCE = os.path.join(ROOT, "wiki", "DevOps-Reference.md")
ACCOUNT = "123456789012"  # moto's default account
REGION = os.environ.get("AWS_REGION", "us-east-1")

failures = []


def check(ok, what):
    print(("ok       " if ok else "FAILED   ") + what, flush=True)
    if not ok:
        failures.append(what)


def gap(what):
    print("moto gap: " + what, flush=True)


def plain(value):
    """cfn-lint's YAML nodes as plain dicts, lists and strings."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def reference_json(marker):
    """The JSON block following `<!-- marker -->` in DevOps-Reference.md."""
    text = open(REFERENCE, encoding="utf-8").read()
    m = re.search(r"<!-- " + re.escape(marker) + r" -->\s*```json\n(.*?)```", text, re.S)
    if not m:
        sys.exit(f"check_stack: no {marker} block in {REFERENCE}")
    return json.loads(m.group(1))


def as_list(v):
    return sorted(v) if isinstance(v, list) else [v]


def same_statement(a, b):
    for k in set(a) | set(b):
        if k in ("Action", "Resource"):
            if as_list(a.get(k)) != as_list(b.get(k)):
                return False
        elif a.get(k) != b.get(k):
            return False
    return True


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def binary(name):
    """target/debug/NAME, built when missing (TINQS_CI_BIN and GITEA_SIM_BIN name others)."""
    var = {"tinqs-ci": "TINQS_CI_BIN", "gitea-sim": "GITEA_SIM_BIN"}[name]
    if os.environ.get(var):
        return os.environ[var]
    path = os.path.join(ROOT, "target", "debug", name)
    if not os.access(path, os.X_OK):
        subprocess.run(["cargo", "build", "-q", "-p", name, "--bin", name], cwd=ROOT, check=True)
    return path


class World:
    """What the account has before the stack, and the clients."""

    def __init__(self):
        self.ec2 = boto3.client("ec2", region_name=REGION)
        self.ssm = boto3.client("ssm", region_name=REGION)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.cfn = boto3.client("cloudformation", region_name=REGION)
        self.ddb = boto3.client("dynamodb", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.events = boto3.client("events", region_name=REGION)
        self.iam = boto3.client("iam", region_name=REGION)
        tag = uuid.uuid4().hex[:8]
        self.tag = tag
        self.cluster = f"dep-{tag}"
        self.table = f"runs-{tag}"
        self.vpc = self.ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
        self.subnets = [
            self.ec2.create_subnet(
                VpcId=self.vpc, CidrBlock=f"10.7.{i}.0/24", AvailabilityZone=f"{REGION}{z}"
            )["Subnet"]["SubnetId"]
            for i, z in ((1, "a"), (2, "b"))
        ]
        self.runner_ami = self.ec2.register_image(
            Name=f"runner-{tag}", RootDeviceName="/dev/xvda"
        )["ImageId"]
        self.controller_ami = self.ec2.register_image(
            Name=f"controller-{tag}", RootDeviceName="/dev/xvda"
        )["ImageId"]
        self.ami_param = f"/test-{tag}/controller-ami"
        self.ssm.put_parameter(Name=self.ami_param, Value=self.controller_ami, Type="String")
        self.token_param = f"/test-{tag}/gitea-token"
        self.secret_param = f"/test-{tag}/webhook-secret"
        self.token = "sim-admin-token-" + uuid.uuid4().hex
        self.secret = "webhook-secret-" + uuid.uuid4().hex
        self.ssm.put_parameter(Name=self.token_param, Value=self.token, Type="SecureString")
        self.ssm.put_parameter(Name=self.secret_param, Value=self.secret, Type="SecureString")
        self.bucket = f"artifacts-{tag}"
        self.s3.create_bucket(Bucket=self.bucket)
        self.pools = (
            "pools:\n"
            "  go:\n"
            "    instance_types: [c7a.large]\n"
            "    subnets: [@SUBNETS@]\n"
            "    security_groups: [@RUNNER_SECURITY_GROUP@]\n"
            f"    ami: {self.runner_ami}\n"
            "    instance_profile: @RUNNER_INSTANCE_PROFILE@\n"
            "    max_instances: 4\n"
        )
        self.s3.put_object(Bucket=self.bucket, Key="tinqs-ci/pools.yaml", Body=self.pools.encode())
        self.port = free_port()


def main():
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if not endpoint.startswith("http://127.0.0.1:"):
        sys.exit("check_stack: run under scripts/with-moto.sh (AWS_ENDPOINT_URL must be moto on loopback)")
    w = World()
    sim = subprocess.Popen(
        [binary("gitea-sim"), "--listen", f"127.0.0.1:{w.port}", "--token", w.token],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{w.port}/api/v1/version", timeout=1)
                break
            except Exception:
                if time.time() > deadline or sim.poll() is not None:
                    sys.exit("check_stack: the Gitea simulator did not start")
                time.sleep(0.1)
        run_checks(w)
    finally:
        sim.terminate()
        sim.wait()
    if failures:
        print(f"check_stack: {len(failures)} check(s) failed")
        sys.exit(1)
    print("check_stack: all checks passed")


def create_stack(w):
    params = {
        "ClusterId": w.cluster,
        "TableName": w.table,
        "VpcId": w.vpc,
        "SubnetIds": ",".join(w.subnets),
        "WebhookSourceCidr": "10.0.0.0/8",
        "GiteaUrl": f"http://127.0.0.1:{w.port}",
        "GiteaTokenParameter": w.token_param,
        "WebhookSecretParameter": w.secret_param,
        "ArtifactBucket": w.bucket,
        "ControllerAmi": w.ami_param,
        "CreateCacheBucket": "true",
    }
    stack = f"tinqs-ci-{w.tag}"
    w.cfn.create_stack(
        StackName=stack,
        TemplateBody=open(TEMPLATE, encoding="utf-8").read(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    deadline = time.time() + 60
    while True:
        desc = w.cfn.describe_stacks(StackName=stack)["Stacks"][0]
        if not desc["StackStatus"].endswith("IN_PROGRESS") or time.time() > deadline:
            break
        time.sleep(0.2)
    check(desc["StackStatus"] == "CREATE_COMPLETE", f"stack {stack}: {desc['StackStatus']}")
    if desc["StackStatus"] != "CREATE_COMPLETE":
        for e in w.cfn.describe_stack_events(StackName=stack)["StackEvents"]:
            print(e["LogicalResourceId"], e["ResourceStatus"], e.get("ResourceStatusReason", ""))
        sys.exit("check_stack: the stack was not created")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in desc.get("Outputs", [])}
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in w.cfn.describe_stack_resources(StackName=stack)["StackResources"]
        if "LogicalResourceId" in r  # moto lists the stack itself too, without ids
    }
    return stack, outputs, physical


def check_table(w, res, outputs):
    want = reference_json("create-table-json")
    t = w.ddb.describe_table(TableName=w.table)["Table"]
    check(outputs.get("TableName") == w.table, "output TableName names the table")
    key = lambda a: a["AttributeName"]  # noqa: E731
    check(
        sorted(t["AttributeDefinitions"], key=key) == sorted(want["AttributeDefinitions"], key=key),
        "table attribute definitions as in DevOps-Reference",
    )
    check(t["KeySchema"] == want["KeySchema"], "table key schema: pk HASH")
    got_gsi = [
        {k: g[k] for k in ("IndexName", "KeySchema", "Projection")}
        for g in t.get("GlobalSecondaryIndexes", [])
    ]
    check(got_gsi == want["GlobalSecondaryIndexes"], "index active-runs: active HASH, pk RANGE, ALL")
    check(
        t.get("BillingModeSummary", {}).get("BillingMode") == want["BillingMode"],
        "table billing PAY_PER_REQUEST",
    )
    ttl_spec = res["RunsTable"]["Properties"].get("TimeToLiveSpecification")
    ttl_doc = re.search(
        r"update-time-to-live .*?AttributeName=(\w+)", open(REFERENCE, encoding="utf-8").read(), re.S
    ).group(1)
    check(
        ttl_spec == {"AttributeName": ttl_doc, "Enabled": True},
        f"template TTL on {ttl_doc}, as `store init` sets it",
    )
    ttl = w.ddb.describe_time_to_live(TableName=w.table)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") != "ENABLED":
        gap("DynamoDB TimeToLiveSpecification is ignored; applying the template's own setting")
        w.ddb.update_time_to_live(TableName=w.table, TimeToLiveSpecification=ttl_spec)


def check_events(w, res, outputs, physical):
    queue_url = outputs.get("EventsQueueUrl", "")
    check(
        queue_url.startswith("http") and queue_url == physical.get("EventsQueue"),
        "output EventsQueueUrl is the queue's URL",
    )
    queue_arn = w.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    for logical, detail in (
        ("SpotInterruptionRule", "EC2 Spot Instance Interruption Warning"),
        ("RebalanceRule", "EC2 Instance Rebalance Recommendation"),
    ):
        rule = w.events.describe_rule(Name=physical.get(logical, "").split("/")[-1])
        check(
            json.loads(rule["EventPattern"]) == {"source": ["aws.ec2"], "detail-type": [detail]},
            f"rule {logical} matches '{detail}' from aws.ec2",
        )
        check(rule.get("State") == "ENABLED", f"rule {logical} is enabled")
        targets = w.events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        check([t["Arn"] for t in targets] == [queue_arn], f"rule {logical} targets the queue")
    # Events shaped as EC2 sends them (detail-type and detail per the EC2 user guide).
    sent = [
        ("EC2 Spot Instance Interruption Warning",
         {"instance-id": "i-0123456789abcdef0", "instance-action": "terminate"}),
        ("EC2 Instance Rebalance Recommendation", {"instance-id": "i-0fedcba9876543210"}),
        ("EC2 Instance State-change Notification",
         {"instance-id": "i-0aaaaaaaaaaaaaaaa", "state": "running"}),
    ]
    for detail, body in sent:
        w.events.put_events(
            Entries=[{"Source": "aws.ec2", "DetailType": detail, "Detail": json.dumps(body)}]
        )
    got = []
    deadline = time.time() + 20
    while len(got) < 2 and time.time() < deadline:
        msgs = w.sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        for m in msgs:
            event = json.loads(m["Body"])
            got.append((event["detail-type"], event["detail"]))
            w.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    extra = w.sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
    check(
        sorted(got, key=str) == sorted(sent[:2], key=str) and not extra,
        f"the queue received the warning and the recommendation, and not the state change: {got}",
    )
    gap("SQS QueuePolicy is neither created nor enforced by moto; checking the template's")
    qp = res["EventsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    check(
        len(qp) == 1
        and qp[0]["Principal"] == {"Service": "events.amazonaws.com"}
        and qp[0]["Action"] == "sqs:SendMessage"
        and qp[0]["Resource"] == {"Fn::GetAtt": ["EventsQueue", "Arn"]}
        and sorted(str(a) for a in qp[0]["Condition"]["ArnEquals"]["aws:SourceArn"])
        == sorted(str({"Fn::GetAtt": [r, "Arn"]}) for r in ("SpotInterruptionRule", "RebalanceRule")),
        "queue policy: events.amazonaws.com may send to the queue, only for the two rules",
    )
    return queue_url, queue_arn


def policy_document(iam, role, name):
    doc = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    if isinstance(doc, str):
        # moto returns a policy made by CloudFormation as Python's repr of the dict.
        try:
            doc = json.loads(doc)
        except ValueError:
            doc = ast.literal_eval(doc)
    return doc


def check_iam(w, outputs, physical, queue_arn):
    role_name = physical["ControllerRole"]
    runner_role = physical["RunnerRole"]
    doc = policy_document(w.iam, role_name, "tinqs-ci-controller")
    statements = {s["Sid"]: s for s in doc["Statement"]}
    reference = json.dumps(reference_json("iam-policy-json"))
    for placeholder, value in (
        ("REGION", REGION),
        ("ACCOUNT", ACCOUNT),
        ("TABLE", w.table),
        ("CLUSTER", w.cluster),
        ("RUNNER_ROLE", runner_role),
    ):
        reference = re.sub(r"\b" + placeholder + r"\b", value, reference)
    reference = json.loads(reference)["Statement"]
    for want in reference:
        got = statements.get(want["Sid"])
        check(
            got is not None and same_statement(got, want),
            f"controller policy statement {want['Sid']} as in DevOps-Reference",
        )
    check(
        same_statement(
            statements.get("SpotWarningQueue", {}),
            {"Sid": "SpotWarningQueue", "Effect": "Allow",
             "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
             "Resource": queue_arn},
        ),
        "controller may receive, delete and count on the warning queue, nothing else there",
    )
    arn = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter"
    secrets = statements.get("ReadSecretsAtStart", {})
    check(
        as_list(secrets.get("Resource")) == sorted([arn + w.token_param, arn + w.secret_param])
        and secrets.get("Action") == "ssm:GetParameter",
        "controller may read exactly the two named secrets",
    )
    release = statements.get("ReadReleaseAndPools", {})
    check(
        as_list(release.get("Resource"))
        == sorted([f"arn:aws:s3:::{w.bucket}/tinqs-ci/release/*",
                   f"arn:aws:s3:::{w.bucket}/tinqs-ci/pools.yaml"])
        and release.get("Action") == "s3:GetObject",
        "controller may read only the release and the pools file",
    )
    check(
        set(statements) == {s["Sid"] for s in reference}
        | {"SpotWarningQueue", "ReadSecretsAtStart", "ReadReleaseAndPools"},
        f"controller policy has no other statement: {sorted(statements)}",
    )
    cache_policy = policy_document(w.iam, role_name, "tinqs-ci-cache")
    cache = outputs.get("CacheBucketName", "")
    check(
        all(cache in json.dumps(s["Resource"]) for s in cache_policy["Statement"]),
        "the cache policy names only the cache bucket",
    )
    profile = w.iam.get_instance_profile(InstanceProfileName=outputs["RunnerInstanceProfile"])
    check(
        [r["RoleName"] for r in profile["InstanceProfile"]["Roles"]] == [runner_role],
        "runner instance profile holds the runner role",
    )
    check(
        not w.iam.list_role_policies(RoleName=runner_role)["PolicyNames"]
        and not w.iam.list_attached_role_policies(RoleName=runner_role)["AttachedPolicies"],
        "runner role has no permissions of its own",
    )


def check_network_and_cache(w, res, outputs, physical):
    runner_sg, controller_sg = outputs["RunnerSecurityGroupId"], physical["ControllerSecurityGroup"]
    by_id = {
        g["GroupId"]: g
        for g in w.ec2.describe_security_groups(GroupIds=[runner_sg, controller_sg])["SecurityGroups"]
    }
    check(not by_id[runner_sg]["IpPermissions"], "runner security group admits nothing inbound")
    check(by_id[runner_sg]["VpcId"] == w.vpc and by_id[controller_sg]["VpcId"] == w.vpc,
          "both security groups are in the VPC")
    ingress = [
        (p.get("FromPort"), p.get("ToPort"), [r["CidrIp"] for r in p["IpRanges"]])
        for p in by_id[controller_sg]["IpPermissions"]
    ]
    check(sorted(ingress) == [(8080, 8080, ["10.0.0.0/8"]), (8081, 8081, [])],
          f"controller security group admits 8080 from WebhookSourceCidr and 8081 only: {ingress}")
    cache_from = [
        pair["GroupId"]
        for p in by_id[controller_sg]["IpPermissions"] if p.get("FromPort") == 8081
        for pair in p.get("UserIdGroupPairs", [])
    ]
    check(cache_from == [runner_sg], f"the cache port admits the runners only: {cache_from}")
    cache = outputs.get("CacheBucketName", "")
    check(bool(cache) and cache in [b["Name"] for b in w.s3.list_buckets()["Buckets"]],
          "cache bucket exists")
    gap("S3 LifecycleConfiguration is ignored by moto's CloudFormation; checking the template's")
    rules = res["CacheBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    check(
        len(rules) == 1
        and rules[0]["ExpirationInDays"] == {"Ref": "CacheRetentionDays"}
        and rules[0]["Status"] == "Enabled",
        "cache bucket lifecycle expires entries after CacheRetentionDays",
    )


def decode_user_data(value):
    # Fn::Base64 encodes the script; an API may encode it once more.
    for _ in range(2):
        if value.startswith("#!"):
            break
        value = base64.b64decode(value).decode()
    return value


def check_controller(w, res, outputs, physical, queue_url):
    iid = outputs["ControllerInstanceId"]
    inst = w.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
    check(inst["State"]["Name"] in ("pending", "running"), f"controller {iid} is running")
    check(
        inst["InstanceType"] == "t3.small"
        and inst["SubnetId"] == w.subnets[0]
        and inst["ImageId"] == w.controller_ami,
        "controller: t3.small, in the first subnet, the AMI named by the SSM parameter",
    )
    check(
        inst.get("IamInstanceProfile", {}).get("Arn", "").endswith(
            "/" + physical["ControllerInstanceProfile"]
        ),
        "controller runs with its instance profile",
    )
    gap("EC2 instance SecurityGroupIds are ignored by moto's CloudFormation; checking the template's")
    check(res["Controller"]["Properties"]["SecurityGroupIds"] == [{"Ref": "ControllerSecurityGroup"}],
          "controller has the controller security group")
    check("tinqs-ci:cluster" not in tags and tags.get("tinqs-ci:controller-of") == w.cluster,
          "controller carries no ownership tag (it never counts or terminates itself)")
    lt = w.ec2.describe_launch_template_versions(
        LaunchTemplateId=physical["ControllerLaunchTemplate"], Versions=["$Latest"]
    )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    md = lt.get("MetadataOptions", {})
    check(md.get("HttpTokens") == "required" and md.get("HttpPutResponseHopLimit") == 1,
          "controller instance metadata: IMDSv2 only, hop limit 1")

    # moto's CloudFormation starts the instance without its launch template, so the user data
    # is read from the template version, which is what EC2 boots the instance with.
    gap("EC2 instance LaunchTemplate is ignored by moto's CloudFormation; reading the user data from it")
    check(res["Controller"]["Properties"]["LaunchTemplate"] == {
        "LaunchTemplateId": {"Ref": "ControllerLaunchTemplate"},
        "Version": {"Fn::GetAtt": ["ControllerLaunchTemplate", "LatestVersionNumber"]},
    }, "the controller boots from the launch template's latest version")
    user_data = decode_user_data(lt.get("UserData", ""))
    check(user_data.startswith("#!/bin/bash"), "user data is the bootstrap script")
    check(w.token not in user_data and w.secret not in user_data, "user data holds no secret value")
    work = tempfile.mkdtemp(prefix="tinqs-deploy-")
    try:
        script = os.path.join(work, "user-data.sh")
        open(script, "w").write(user_data)
        sc = subprocess.run(["shellcheck", script], capture_output=True, text=True)
        check(sc.returncode == 0, "shellcheck passes on the user data" + ("\n" + sc.stdout if sc.stdout else ""))
        m = re.search(r"<<'PREPARE'\n(.*?)\nPREPARE\n", user_data, re.S)
        prepare = m.group(1) + "\n" if m else ""
        prepare_script = os.path.join(work, "tinqs-ci-prepare")
        open(prepare_script, "w").write(prepare)
        sc = subprocess.run(["shellcheck", prepare_script], capture_output=True, text=True)
        check(
            m is not None and sc.returncode == 0
            and f"get '{w.token_param}'" in prepare and f"get '{w.secret_param}'" in prepare,
            "the prepare script reads both named secrets and passes shellcheck"
            + ("\n" + sc.stdout if sc.stdout else ""),
        )

        # The configuration, rendered by the prepare script's own lines over the pools file.
        block = re.search(r"\n(\{\n  cat <<'CONFIG'\n.*?\n\} >\"\$work/config\.yaml\")\n",
                          prepare, re.S)
        check(block is not None, "user data renders the configuration")
        if block is None:
            return
        open(os.path.join(work, "pools.yaml"), "w").write(w.pools)
        subprocess.run(["bash", "-euo", "pipefail", "-c", f"work='{work}'\n" + block.group(1)],
                       check=True)
        config = os.path.join(work, "config.yaml")
        text = open(config).read()
        print("--- the configuration the controller instance writes\n" + text + "---")
        check(f"events_queue_url: {queue_url}" in text, "config names the warning queue")
        check(f"table: {w.table}" in text and f"cluster_id: {w.cluster}" in text,
              "config names the table and the cluster")
        check(
            f"subnets: [{', '.join(w.subnets)}]" in text
            and f"security_groups: [{outputs['RunnerSecurityGroupId']}]" in text
            and f"instance_profile: {outputs['RunnerInstanceProfile']}" in text
            and "@" not in text.split("pools:")[1],
            "pools file placeholders replaced",
        )
        # The spool lives in /var/lib/tinqs-ci on the instance; here in the scratch dir.
        open(config, "w").write(text.replace("/var/lib/tinqs-ci/spool", os.path.join(work, "spool")))
        os.mkdir(os.path.join(work, "spool"))
        env = dict(os.environ, GITEA_TOKEN=w.token, GITEA_WEBHOOK_SECRET=w.secret)
        doctor = subprocess.run([binary("tinqs-ci"), "doctor", "--config", config],
                                capture_output=True, text=True, env=env, timeout=120)
        out = doctor.stdout + doctor.stderr
        print(out)
        check(doctor.returncode == 0, f"tinqs-ci doctor passes on that configuration (exit {doctor.returncode})")
        check(w.token not in out and w.secret not in out, "doctor's output holds no secret")
        lines = doctor.stdout.splitlines()
        for name in ("config", "aws credentials", "dynamodb table", "dynamodb TTL", "dynamodb read",
                     "gitea version", "gitea token: list runners", "events queue"):
            check(any(l.startswith("ok") and f" {name}:" in l for l in lines), f"doctor: {name} ok")
        # A terminate dry run needs a live instance of the cluster; there is none yet.
        skipped = [l for l in lines if l.startswith("skipped")
                   and ("ec2" in l or "gitea" in l) and "ec2 TerminateInstances" not in l]
        check(not skipped, f"doctor skipped no other EC2 or Gitea check: {skipped}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return iid


def check_delete(w, stack, iid):
    w.cfn.delete_stack(StackName=stack)
    deadline = time.time() + 60
    status = "DELETE_IN_PROGRESS"
    while status.endswith("IN_PROGRESS") and time.time() < deadline:
        stacks = [s for s in w.cfn.list_stacks()["StackSummaries"] if s["StackName"] == stack]
        status = stacks[0]["StackStatus"] if stacks else "DELETE_COMPLETE"
        time.sleep(0.2)
    check(status == "DELETE_COMPLETE", f"the stack deletes: {status}")
    state = w.ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]
    check(state["Name"] in ("shutting-down", "terminated"),
          f"the controller instance goes with the stack: {state['Name']}")
    check(w.ddb.describe_table(TableName=w.table)["Table"]["TableStatus"] == "ACTIVE",
          "the table stays (DeletionPolicy Retain): run history survives a removal")


def run_checks(w):
    res = plain(cfn_yaml.load(TEMPLATE))["Resources"]
    stack, outputs, physical = create_stack(w)
    check_table(w, res, outputs)
    queue_url, queue_arn = check_events(w, res, outputs, physical)
    check_iam(w, outputs, physical, queue_arn)
    check_network_and_cache(w, res, outputs, physical)
    iid = check_controller(w, res, outputs, physical, queue_url)
    if iid:
        check_delete(w, stack, iid)


if __name__ == "__main__":
    main()
