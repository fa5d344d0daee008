"""Checks of the SAM stack (template.yaml) and the RBAC it names (infra/rbac.yaml).

- cfn-lint finds nothing;
- least privilege, read from the template as CloudFormation sees it (cfn-lint's loader keeps
  !Sub, !GetAtt and the rest as Fn:: objects): which AWS actions each function may call, on
  which resources, under which conditions; which Kubernetes verbs the functions' groups get;
- the queues, log groups, alarms and options hang together;
- the SAM transform expands (samtranslator) and the expanded stack creates in moto's
  CloudFormation, in its default form and with every option set.

The expected action sets below are the calls the Rust code makes (shared/aws/src,
shared/kube/src, functions/*/src); a change there that needs a new permission must change both.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from cfnlint.api import lint_file
from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
RBAC = ROOT / "infra" / "rbac.yaml"

REGION = "us-east-1"
CLUSTER = "demo"

FUNCTIONS = {
    "WebhookFunction": "webhook",
    "ProvisionerFunction": "provisioner",
    "SweeperFunction": "sweeper",
    "InterruptionFunction": "interruption",
}

# --- What the code calls ------------------------------------------------------------------------

DESCRIBE = {
    "ec2:DescribeImages",  # ec2/ami.rs
    "ec2:DescribeInstances",  # ec2/instances.rs
    "ec2:DescribeInstanceTypeOfferings",  # catalog.rs
    "ec2:DescribeInstanceTypes",  # catalog.rs
    "ec2:DescribeLaunchTemplates",  # ec2/mod.rs
    "ec2:DescribeSecurityGroups",  # ec2/network.rs
    "ec2:DescribeSpotPriceHistory",  # catalog.rs
    "ec2:DescribeSubnets",  # ec2/network.rs
}
# One pass (provisioner, sweeper, interruption): catalog, AMIs, launches, claims, cluster info.
PASS = DESCRIBE | {
    "pricing:GetProducts",  # catalog.rs (us-east-1)
    "ssm:GetParameter",  # ec2/ami.rs, AMI aliases
    "eks:DescribeCluster",  # kube/eks.rs, cold start
    "ec2:RunInstances",  # CreateFleet launches through it
    "ec2:CreateFleet",  # ec2/mod.rs
    "ec2:CreateLaunchTemplate",  # ec2/mod.rs
    "ec2:CreateTags",  # the TagSpecifications of the three creating calls
    "iam:PassRole",  # the launch template's instance profile, the role added to it
    "iam:GetInstanceProfile",  # ec2/instance_profile.rs: the node class's profile
    "iam:CreateInstanceProfile",
    "iam:TagInstanceProfile",  # tags on creation, and repaired on a profile found without them
    "iam:AddRoleToInstanceProfile",
    "iam:RemoveRoleFromInstanceProfile",  # the node class's role changed
    "dynamodb:GetItem",  # claims.rs
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:Query",
    "dynamodb:ConditionCheckItem",  # TransactWriteItems' lease check
}
LOGS = {"logs:CreateLogStream", "logs:PutLogEvents"}
POLL = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
EXPECTED_ACTIONS = {
    "WebhookFunction": LOGS | {"sqs:SendMessage", "secretsmanager:GetSecretValue"},  # aws/queue.rs, aws/secrets.rs
    "ProvisionerFunction": LOGS | POLL | PASS | {"ec2:TerminateInstances"},
    # launches replacements, never terminates; deletes launch templates no instance came from
    # and instance profiles of node classes that are gone
    "SweeperFunction": LOGS
    | PASS
    | {"ec2:DeleteLaunchTemplate", "iam:ListInstanceProfiles", "iam:DeleteInstanceProfile"},
    "InterruptionFunction": LOGS | POLL | PASS | {"ec2:TerminateInstances"},
}

# The tags shared/aws/src/ec2/mod.rs puts on what it creates.
CLUSTER_TAG = f"kubernetes.io/cluster/{CLUSTER}"
NODEPOOL_TAG = "karpenter.sh/nodepool"
CLAIM_TAG = "nodewright.io/nodeclaim"
# The tags shared/aws/src/ec2/instance_profile.rs puts on the profiles it makes (Karpenter's).
REGION_TAG = "topology.kubernetes.io/region"
NODECLASS_TAG = "karpenter.k8s.aws/ec2nodeclass"

# --- Loading ------------------------------------------------------------------------------------


def load_template() -> dict[str, Any]:
    # cfn-lint's loader understands the short intrinsic forms; the JSON round trip makes its
    # node types plain dicts, lists and strings.
    return json.loads(json.dumps(cfn_yaml.load(str(TEMPLATE))))


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def resources(template) -> dict[str, Any]:
    return template["Resources"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# Stand-ins for what CloudFormation substitutes, for reading policies statically.
STATIC_SUBSTITUTIONS = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": "123456789012",
    "AWS::URLSuffix": "amazonaws.com",
    "ClusterName": CLUSTER,
}


def substitute(text: str, extra: dict[str, str] | None = None) -> str:
    values = {**STATIC_SUBSTITUTIONS, **(extra or {})}
    # Unknown names (resource attributes) become <Name.Attr> so that checks can see them.
    return re.sub(r"\$\{([^}!]+)\}", lambda m: values.get(m.group(1), f"<{m.group(1)}>"), text)


def policy_document(document: Any) -> dict[str, Any]:
    """A policy document as a dict: a JSON string through !Sub is substituted and parsed."""
    if isinstance(document, dict) and "Fn::Sub" in document:
        body = document["Fn::Sub"]
        assert isinstance(body, str), "policy documents use the one-argument !Sub"
        return json.loads(substitute(body))
    assert isinstance(document, dict) and "Statement" in document, document
    return document


def managed_policy_statements(resources, logical_id: str) -> list[dict[str, Any]]:
    resource = resources[logical_id]
    assert resource["Type"] == "AWS::IAM::ManagedPolicy", logical_id
    return as_list(policy_document(resource["Properties"]["PolicyDocument"])["Statement"])


def role_statements(resources, role_id: str) -> list[dict[str, Any]]:
    """Every statement a role of the template gets: inline and stack-managed policies. AWS
    managed policies are allowed only as AWSLambdaVPCAccessExecutionRole (checked apart)."""
    properties = resources[role_id]["Properties"]
    statements = []
    for policy in properties.get("Policies", []):
        statements += as_list(policy_document(policy["PolicyDocument"])["Statement"])
    for arn in properties.get("ManagedPolicyArns", []):
        if isinstance(arn, dict) and "Ref" in arn:
            statements += managed_policy_statements(resources, arn["Ref"])
    return statements


def function_role(resources, function_id: str) -> str:
    role = resources[function_id]["Properties"]["Role"]
    assert isinstance(role, dict) and "Fn::GetAtt" in role, f"{function_id}: Role is !GetAtt <role>.Arn"
    target = role["Fn::GetAtt"]
    name = target[0] if isinstance(target, list) else target.split(".")[0]
    assert resources[name]["Type"] == "AWS::IAM::Role"
    return name


def all_statements(resources) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for logical_id, resource in resources.items():
        kind, properties = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::IAM::ManagedPolicy":
            out += [(logical_id, s) for s in managed_policy_statements(resources, logical_id)]
        elif kind == "AWS::IAM::Role":
            for policy in properties.get("Policies", []):
                document = policy_document(policy["PolicyDocument"])
                out += [(logical_id, s) for s in as_list(document["Statement"])]
        elif kind == "AWS::Serverless::Function":
            for policy in as_list(properties.get("Policies", [])):
                assert isinstance(policy, dict) and "Statement" in policy, (
                    f"{logical_id}: SAM policy templates and managed policies hide their scope; "
                    "write the statements out"
                )
                out += [(logical_id, s) for s in as_list(policy["Statement"])]
    return out


def text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def condition_keys(statement: dict[str, Any]) -> set[str]:
    return {key for block in statement.get("Condition", {}).values() for key in block}


# --- cfn-lint -----------------------------------------------------------------------------------


def test_cfn_lint_finds_nothing():
    matches = lint_file(TEMPLATE)
    assert not matches, "\n".join(str(m) for m in matches)


def test_sam_validate_lint_is_clean():
    # What `sam deploy` users run; offline, and without telemetry.
    sam = shutil.which("sam")
    assert sam, "the SAM CLI is not installed: pip install -r tests/requirements.txt"
    result = subprocess.run(
        [sam, "validate", "--lint", "--region", REGION, "--template", str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


# --- IAM ----------------------------------------------------------------------------------------


def test_no_action_wildcards(resources):
    for owner, statement in all_statements(resources):
        for action in as_list(statement["Action"]):
            assert "*" not in action or statement["Effect"] == "Deny", f"{owner}: {action}"


def test_no_mutating_ec2_action_without_a_tag_condition(resources):
    """Anything but Describe*/Get* on EC2 either names shared resources (images, subnets, ...)
    or carries a tag condition; on Resource "*" never without one."""
    owned = ("instance/", "volume/", "fleet/", "launch-template/")
    for owner, statement in all_statements(resources):
        if statement["Effect"] != "Allow":
            continue
        mutating = [
            a
            for a in as_list(statement["Action"])
            if a.startswith("ec2:") and not a.split(":")[1].startswith(("Describe", "Get"))
        ]
        if not mutating:
            continue
        keys = condition_keys(statement)
        tagged = any(k.startswith(("aws:RequestTag/", "aws:ResourceTag/")) for k in keys)
        targets = [text(r) for r in as_list(statement["Resource"])]
        sid = f"{owner}/{statement.get('Sid')}"
        assert "*" not in targets, f"{sid}: {mutating} on Resource '*'"
        if any(owned_kind in t for t in targets for owned_kind in owned):
            assert tagged, f"{sid}: {mutating} on {targets} without a tag condition"
            assert f"aws:RequestTag/{CLUSTER_TAG}" in keys or f"aws:ResourceTag/{CLUSTER_TAG}" in keys, sid
        if "ec2:CreateTags" in mutating:
            assert "ec2:CreateAction" in keys, f"{sid}: CreateTags only when creating"


def test_launch_and_termination_scopes(resources):
    statements = {s["Sid"]: s for s in managed_policy_statements(resources, "ProvisioningPolicy")}
    tagged = statements["LaunchTaggedInstances"]["Condition"]
    assert tagged["StringEquals"][f"aws:RequestTag/{CLUSTER_TAG}"] == "owned"
    assert tagged["StringLike"][f"aws:RequestTag/{NODEPOOL_TAG}"] == "*"
    # Launch templates carry the cluster tag but no nodepool tag (one serves every pool).
    create = statements["CreateTaggedLaunchTemplates"]
    assert as_list(create["Action"]) == ["ec2:CreateLaunchTemplate"]
    assert create["Condition"]["StringEquals"][f"aws:RequestTag/{CLUSTER_TAG}"] == "owned"
    use = statements["LaunchFromOwnLaunchTemplates"]
    assert use["Condition"]["StringEquals"][f"aws:ResourceTag/{CLUSTER_TAG}"] == "owned"
    creation = statements["TagOnCreation"]["Condition"]["StringEquals"]["ec2:CreateAction"]
    assert set(creation) == {"RunInstances", "CreateFleet", "CreateLaunchTemplate"}

    [terminate] = managed_policy_statements(resources, "TerminationPolicy")
    assert as_list(terminate["Action"]) == ["ec2:TerminateInstances"]
    assert terminate["Resource"].endswith(":instance/*")
    condition = terminate["Condition"]
    assert condition["StringEquals"][f"aws:ResourceTag/{CLUSTER_TAG}"] == "owned"
    assert condition["StringLike"][f"aws:ResourceTag/{NODEPOOL_TAG}"] == "*"
    assert condition["StringLike"][f"aws:ResourceTag/{CLAIM_TAG}"] == "*"


def test_instance_profile_scopes(resources):
    """As Karpenter's controller policy scopes them: profiles are made only with the cluster's,
    region's and a node class's tags, and changed or deleted only when they carry them."""
    statements = {s["Sid"]: s for s in managed_policy_statements(resources, "ProvisioningPolicy")}
    profiles = "arn:aws:iam::123456789012:instance-profile/nodewright/*"

    create = statements["CreateTaggedInstanceProfiles"]
    assert set(as_list(create["Action"])) == {"iam:CreateInstanceProfile", "iam:TagInstanceProfile"}
    assert create["Resource"] == profiles
    assert create["Condition"]["StringEquals"] == {
        f"aws:RequestTag/{CLUSTER_TAG}": "owned",
        f"aws:RequestTag/{REGION_TAG}": REGION,
    }
    assert create["Condition"]["StringLike"] == {f"aws:RequestTag/{NODECLASS_TAG}": "*"}

    roles = statements["OwnInstanceProfileRoles"]
    assert set(as_list(roles["Action"])) == {"iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile"}
    [delete] = [
        s for s in managed_policy_statements(resources, "InstanceProfileHygienePolicy") if s["Sid"] == "DeleteOwnInstanceProfiles"
    ]
    assert as_list(delete["Action"]) == ["iam:DeleteInstanceProfile"]
    for statement in (roles, delete):
        assert statement["Resource"] == profiles
        assert statement["Condition"]["StringEquals"] == {
            f"aws:ResourceTag/{CLUSTER_TAG}": "owned",
            f"aws:ResourceTag/{REGION_TAG}": REGION,
        }
        assert statement["Condition"]["StringLike"] == {f"aws:ResourceTag/{NODECLASS_TAG}": "*"}

    # Reads name no profile, as IAM's read actions cannot be scoped by tag.
    assert as_list(statements["InstanceProfileReadActions"]["Action"]) == ["iam:GetInstanceProfile"]


def test_no_mutating_iam_action_without_a_cluster_tag_condition(resources):
    for owner, statement in all_statements(resources):
        mutating = [
            a
            for a in as_list(statement["Action"])
            if a.startswith("iam:") and not a.split(":")[1].startswith(("Get", "List", "PassRole"))
        ]
        if not mutating or statement["Effect"] != "Allow":
            continue
        keys = condition_keys(statement)
        sid = f"{owner}/{statement.get('Sid')}"
        assert "*" not in text(statement["Resource"]).split(":")[-1].split("/")[0], sid
        assert f"aws:RequestTag/{CLUSTER_TAG}" in keys or f"aws:ResourceTag/{CLUSTER_TAG}" in keys, sid
        assert f"aws:RequestTag/{REGION_TAG}" in keys or f"aws:ResourceTag/{REGION_TAG}" in keys, sid


def test_reads_are_regional_and_ami_parameters_public(resources):
    for owner, statement in all_statements(resources):
        actions = as_list(statement["Action"])
        if any(a.startswith("ec2:Describe") for a in actions):
            assert set(actions) <= DESCRIBE, f"{owner}: {actions}"
            assert statement["Condition"]["StringEquals"]["aws:RequestedRegion"] == REGION
        if "ssm:GetParameter" in actions:
            for resource in as_list(statement["Resource"]):
                assert re.fullmatch(
                    rf"arn:aws:ssm:{REGION}::parameter/aws/service/(eks/optimized-ami|bottlerocket)/\*",
                    resource,
                ), resource


def test_pass_role_only_the_node_role_only_to_ec2(resources):
    found = False
    for owner, statement in all_statements(resources):
        if "iam:PassRole" in as_list(statement["Action"]):
            found = True
            assert statement["Resource"] == "<NodeRole.Arn>", owner
            passed_to = statement.get("Condition", {}).get("StringEquals", {}).get("iam:PassedToService")
            assert passed_to == "ec2.amazonaws.com", f"{owner}: iam:PassRole without iam:PassedToService"
    assert found


def test_dynamodb_only_the_claims_table_and_partition(resources):
    for owner, statement in all_statements(resources):
        actions = [a for a in as_list(statement["Action"]) if a.startswith("dynamodb:")]
        if not actions:
            continue
        assert as_list(statement["Resource"]) == ["<ClaimsTable.Arn>"], owner
        leading = statement["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]
        assert leading == [CLUSTER], owner


def test_sqs_only_the_stack_queues(resources):
    for owner, statement in all_statements(resources):
        if any(a.startswith("sqs:") for a in as_list(statement["Action"])):
            for resource in as_list(statement["Resource"]):
                assert resource in (
                    {"Fn::GetAtt": ["ProvisionQueue", "Arn"]},
                    {"Fn::GetAtt": ["InterruptionQueue", "Arn"]},
                ), f"{owner}: {resource}"


def test_logs_only_the_function_log_groups(resources):
    for function_id in FUNCTIONS:
        role = function_role(resources, function_id)
        log_group = function_id.replace("Function", "LogGroup")
        for statement in role_statements(resources, role):
            if any(a.startswith("logs:") for a in as_list(statement["Action"])):
                assert statement["Resource"] == {"Fn::GetAtt": [log_group, "Arn"]}, role


def test_every_function_lists_its_permissions(resources):
    functions = [k for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function"]
    assert set(functions) == set(FUNCTIONS)
    for function_id in functions:
        properties = resources[function_id]["Properties"]
        assert "Policies" in properties or "Role" in properties, function_id


def test_each_function_gets_only_what_it_calls(resources):
    for function_id, expected in EXPECTED_ACTIONS.items():
        role = function_role(resources, function_id)
        granted = {
            a
            for s in role_statements(resources, role)
            if s["Effect"] == "Allow"
            for a in as_list(s["Action"])
        }
        assert granted == expected, (
            f"{function_id}: extra {sorted(granted - expected)}, missing {sorted(expected - granted)}"
        )
        # Only the VPC access policy may come from AWS, and only when the VPC is asked for.
        for arn in resources[role]["Properties"].get("ManagedPolicyArns", []):
            if isinstance(arn, dict) and "Ref" in arn:
                continue
            assert "Fn::If" in arn and arn["Fn::If"][0] == "InVpc", f"{role}: {arn}"
            assert "AWSLambdaVPCAccessExecutionRole" in text(arn["Fn::If"][1])
            assert arn["Fn::If"][2] == {"Ref": "AWS::NoValue"}


def test_the_webhook_secret_is_generated_and_only_the_webhook_reads_it(template, resources):
    assert "WebhookSecret" not in template.get("Parameters", {}), "no secret typed into a parameter"
    secret = resources["WebhookSecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    generated = secret["Properties"]["GenerateSecretString"]
    assert generated["PasswordLength"] >= 32 and generated["ExcludePunctuation"] is True
    readers = {
        role
        for role in ("WebhookRole", "ProvisionerRole", "SweeperRole", "InterruptionRole")
        for s in role_statements(resources, role)
        if any(a.startswith("secretsmanager:") for a in as_list(s["Action"]))
    }
    assert readers == {"WebhookRole"}
    [statement] = [s for s in role_statements(resources, "WebhookRole") if s.get("Sid") == "WebhookSecretRead"]
    assert statement["Resource"] == {"Ref": "WebhookSecret"}
    variables = resources["WebhookFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["NODEWRIGHT_WEBHOOK_SECRET_ID"] == {"Ref": "WebhookSecret"}
    assert "NODEWRIGHT_WEBHOOK_SECRET" not in variables
    # The API server waits 2 s; the function must not run much past that.
    assert resources["WebhookFunction"]["Properties"]["Timeout"] <= 3


def test_roles_trust_only_their_service(resources):
    for function_id in FUNCTIONS:
        role = resources[function_role(resources, function_id)]
        [statement] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}
        assert statement["Action"] == "sts:AssumeRole"


# --- Kubernetes access --------------------------------------------------------------------------


def rbac_documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(RBAC.read_text()) if d]


def test_no_eks_access_policy(resources):
    raw = TEMPLATE.read_text()
    for policy in ("AmazonEKSClusterAdminPolicy", "AmazonEKSAdminViewPolicy", "AmazonEKSAdminPolicy"):
        assert policy not in raw
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::EKS::AccessEntry":
            assert "AccessPolicies" not in resource["Properties"], logical_id


def test_access_entries_name_groups_that_rbac_binds(resources):
    bound = {}
    docs = rbac_documents()
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    for d in docs:
        if d["kind"] == "ClusterRoleBinding":
            for subject in d["subjects"]:
                assert subject["kind"] == "Group"
                bound[subject["name"]] = roles[d["roleRef"]["name"]]
    groups = {}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::EKS::AccessEntry" and resource["Properties"]["Type"] == "STANDARD":
            principal = resource["Properties"]["PrincipalArn"]["Fn::GetAtt"][0]
            [group] = resource["Properties"]["KubernetesGroups"]
            assert group in bound, f"{logical_id}: {group} is bound by no ClusterRoleBinding"
            groups[principal] = group
    assert groups == {
        "ProvisionerRole": "nodewright:provisioner",
        "InterruptionRole": "nodewright:provisioner",
        "SweeperRole": "nodewright:sweeper",
    }


def rules_of(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_cluster_roles_are_exactly_the_calls():
    roles = {d["metadata"]["name"]: d for d in rbac_documents() if d["kind"] == "ClusterRole"}
    # shared/kube/src/cluster.rs
    sweeper = {
        ("", "pods", "list"),
        ("", "nodes", "list"),
        ("apps", "daemonsets", "list"),
        ("policy", "poddisruptionbudgets", "list"),
        ("karpenter.sh", "nodepools", "list"),
        ("karpenter.k8s.aws", "ec2nodeclasses", "list"),
        ("", "namespaces", "list"),
        ("", "persistentvolumeclaims", "list"),
        ("", "persistentvolumes", "list"),
        ("storage.k8s.io", "storageclasses", "list"),
        ("events.k8s.io", "events", "create"),
        ("events.k8s.io", "events", "get"),
        ("events.k8s.io", "events", "update"),
    }
    provisioner = sweeper | {
        ("", "nodes", "get"),
        ("karpenter.sh", "nodepools/status", "patch"),
        ("karpenter.k8s.aws", "ec2nodeclasses/status", "patch"),
        ("", "nodes", "update"),
        ("", "nodes", "delete"),
        ("", "pods/eviction", "create"),
    }
    assert rules_of(roles["nodewright-provisioner"]) == provisioner
    assert rules_of(roles["nodewright-sweeper"]) == sweeper
    for role in roles.values():
        assert not any("*" in part for rule in rules_of(role) for part in rule)


# --- Queues, schedules, logs, alarms ------------------------------------------------------------


def consumers(resources) -> dict[str, str]:
    """Queue logical id -> the function its SQS event feeds."""
    out = {}
    for function_id in FUNCTIONS:
        for event in resources[function_id]["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                out[event["Properties"]["Queue"]["Fn::GetAtt"][0]] = function_id
    return out


def test_queues_can_redrive_and_retry(template, resources):
    max_delay = template["Parameters"]["BatchWindowSeconds"]["MaxValue"]
    fed = consumers(resources)
    assert set(fed) == {"ProvisionQueue", "InterruptionQueue"}
    for queue_id, function_id in fed.items():
        queue = resources[queue_id]["Properties"]
        timeout = resources[function_id]["Properties"]["Timeout"]
        visibility = queue["VisibilityTimeout"]
        # Lambda refuses a queue whose visibility timeout is shorter than the function's.
        assert visibility >= timeout, queue_id
        redrive = queue["RedrivePolicy"]
        delay = max_delay if "DelaySeconds" in queue else 0
        # A message must be able to fail maxReceiveCount times before it expires, or the
        # dead-letter queue never receives anything.
        assert queue["MessageRetentionPeriod"] > visibility * redrive["maxReceiveCount"] + delay, queue_id
        dlq_id = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
        dlq = resources[dlq_id]["Properties"]
        assert dlq["MessageRetentionPeriod"] >= queue["MessageRetentionPeriod"]
        assert dlq.get("FifoQueue", False) == queue.get("FifoQueue", False)
        # The function's lease check must agree with its timeout.
        env = resources[function_id]["Properties"]["Environment"]["Variables"]
        assert env["NODEWRIGHT_FUNCTION_TIMEOUT_SECONDS"] == str(timeout)
    # A failed FIFO message holds the group for the visibility timeout: no longer than needed.
    assert resources["ProvisionQueue"]["Properties"]["VisibilityTimeout"] == (
        resources["ProvisionerFunction"]["Properties"]["Timeout"]
    )


def test_queues_encrypted_and_tls_only(resources):
    queues = [k for k, v in resources.items() if v["Type"] == "AWS::SQS::Queue"]
    covered = set()
    for resource in resources.values():
        if resource["Type"] != "AWS::SQS::QueuePolicy":
            continue
        statements = resource["Properties"]["PolicyDocument"]["Statement"]
        tls = [
            s
            for s in statements
            if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        if tls:
            covered |= {q["Ref"] for q in resource["Properties"]["Queues"]}
        for s in statements:
            if s["Effect"] == "Allow":
                assert s["Principal"] == {"Service": "events.amazonaws.com"}
                assert "aws:SourceArn" in s["Condition"]["ArnEquals"]
    for queue in queues:
        assert resources[queue]["Properties"]["SqsManagedSseEnabled"] is True, queue
    assert covered == set(queues)


def test_schedules_drop_stale_ticks(resources):
    for function_id in ("ProvisionerFunction", "SweeperFunction"):
        properties = resources[function_id]["Properties"]
        assert properties["ReservedConcurrentExecutions"] == 1
        assert properties["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
        assert properties["EventInvokeConfig"]["MaximumEventAgeInSeconds"] == 60
        for event in properties["Events"].values():
            if event["Type"] == "ScheduleV2":
                assert event["Properties"]["RetryPolicy"]["MaximumRetryAttempts"] == 0
    webhook = resources["WebhookFunction"]["Properties"]
    assert webhook["ReservedConcurrentExecutions"] == {"Ref": "WebhookReservedConcurrency"}


def test_log_groups_and_alarms(resources):
    for function_id, short in FUNCTIONS.items():
        properties = resources[function_id]["Properties"]
        assert properties["FunctionName"] == {"Fn::Sub": f"nodewright-${{ClusterName}}-{short}"}
        log_group = resources[function_id.replace("Function", "LogGroup")]["Properties"]
        assert log_group["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/nodewright-${{ClusterName}}-{short}"}
        assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    alarms = [v["Properties"] for v in resources.values() if v["Type"] == "AWS::CloudWatch::Alarm"]
    errors = {a["Dimensions"][0]["Value"]["Ref"] for a in alarms if a["MetricName"] == "Errors"}
    assert errors == set(FUNCTIONS)
    depth = {
        a["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for a in alarms
        if a["MetricName"] == "ApproximateNumberOfMessagesVisible"
    }
    assert depth == {"ProvisionDeadLetterQueue", "InterruptionDeadLetterQueue"}


def test_options(template, resources):
    parameters = template["Parameters"]
    assert parameters["Architecture"]["Default"] == "arm64"
    assert set(parameters["Architecture"]["AllowedValues"]) == {"arm64", "x86_64"}
    assert template["Globals"]["Function"]["Architectures"] == [{"Ref": "Architecture"}]
    assert parameters["LogRetentionDays"]["Default"] == 30
    # The node role cannot take the name Karpenter's getting-started stack gives its own.
    role_name = resources["NodeRole"]["Properties"]["RoleName"]
    assert role_name == {
        "Fn::If": ["DefaultNodeRoleName", {"Fn::Sub": "nodewright-node-${ClusterName}"}, {"Ref": "NodeRoleName"}]
    }
    assert parameters["NodeRoleName"]["Default"] == ""
    for function_id in ("ProvisionerFunction", "SweeperFunction", "InterruptionFunction"):
        vpc = resources[function_id]["Properties"]["VpcConfig"]["Fn::If"]
        assert vpc[0] == "InVpc" and vpc[2] == {"Ref": "AWS::NoValue"}


# --- The expanded stack in moto -----------------------------------------------------------------

# Resource types moto 5.2.1's CloudFormation cannot create (it logs "No Moto CloudFormation
# support" and would leave them out); the test removes exactly these, and anything new that moto
# cannot create fails the test rather than being skipped silently.
MOTO_CANNOT_CREATE = {
    "AWS::EKS::AccessEntry": "moto's EKS has no access entries at all",
    "AWS::CloudWatch::Alarm": "moto's CloudWatch alarms have an API but no CloudFormation model",
    "AWS::Lambda::EventInvokeConfig": "no CloudFormation model in moto",
    "AWS::Lambda::Url": "no CloudFormation model in moto (the WebhookUrl output reads it)",
    "AWS::SQS::QueuePolicy": "no CloudFormation model in moto",
    "AWS::Scheduler::Schedule": "no CloudFormation model in moto (SAM's ScheduleV2 events)",
}
# Resource types moto cannot create but the rest of the stack needs: the test makes them through
# the API, with the properties the template gives, and puts their ARN where the template refers
# to them.
MOTO_STANDS_IN = {
    "AWS::SecretsManager::Secret": "no CloudFormation model in moto",
}
ARTIFACTS = "nodewright-artifacts"
ARTIFACT_KEY = "bootstrap.zip"


def expand(parameters: dict[str, str]) -> dict[str, Any]:
    """The SAM transform, as CloudFormation runs it, with the code already uploaded."""
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    sam = load_template()
    sam["Globals"]["Function"]["CodeUri"] = f"s3://{ARTIFACTS}/{ARTIFACT_KEY}"
    # Every function has its own role, so the transform never looks a managed policy up: the
    # map is empty, and a lookup would fail the test.
    translator = Translator({}, Parser(), boto_session=boto3.Session(region_name=REGION))
    return translator.translate(sam_template=sam, parameter_values=dict(parameters))


def for_moto(expanded: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    from moto.cloudformation.parsing import resource_class_from_type

    stack = copy.deepcopy(expanded)
    unsupported = {v["Type"] for v in stack["Resources"].values() if not resource_class_from_type(v["Type"])}
    known = set(MOTO_CANNOT_CREATE) | set(MOTO_STANDS_IN)
    assert unsupported <= known, f"moto cannot create {unsupported - known}"
    for logical_id, resource in list(stack["Resources"].items()):
        if resource["Type"] == "AWS::SecretsManager::Secret":
            stack = _replace_refs(stack, logical_id, _stand_in_secret(resource["Properties"], parameters))
    skipped = {k for k, v in stack["Resources"].items() if v["Type"] in MOTO_CANNOT_CREATE}
    for logical_id in skipped:
        del stack["Resources"][logical_id]
    # Outputs that read a skipped resource go with it.
    for name, output in list(stack.get("Outputs", {}).items()):
        if any(re.search(rf'"{re.escape(k)}"', json.dumps(output)) for k in skipped):
            del stack["Outputs"][name]
    # moto's AWS::IAM::ManagedPolicy json-dumps PolicyDocument as if it were always an object,
    # so a document given as a JSON string through !Sub (valid CloudFormation, and Karpenter's
    # form: the condition keys carry the cluster name) arrives double-encoded. Hand it the same
    # document as an object: parameters substituted everywhere (keys included), the remaining
    # ${...} references (pseudo parameters, resource attributes) left to moto's !Sub.
    for resource in stack["Resources"].values():
        if resource["Type"] != "AWS::IAM::ManagedPolicy":
            continue
        document = resource["Properties"]["PolicyDocument"]
        if isinstance(document, dict) and isinstance(document.get("Fn::Sub"), str):
            body = re.sub(
                r"\$\{([^}!.:]+)\}",
                lambda m: parameters.get(m.group(1), m.group(0)),
                document["Fn::Sub"],
            )
            resource["Properties"]["PolicyDocument"] = _sub_values(json.loads(body))
    return stack


def _stand_in_secret(properties: dict[str, Any], parameters: dict[str, str]) -> str:
    """Creates the secret as CloudFormation would and returns its ARN."""
    name = properties["Name"]["Fn::Sub"].replace("${ClusterName}", parameters["ClusterName"])
    generate = properties["GenerateSecretString"]
    client = boto3.client("secretsmanager", region_name=REGION)
    value = client.get_random_password(
        PasswordLength=generate["PasswordLength"],
        ExcludePunctuation=generate.get("ExcludePunctuation", False),
    )["RandomPassword"]
    return client.create_secret(Name=name, SecretString=value)["ARN"]


def _replace_refs(stack: dict[str, Any], logical_id: str, arn: str) -> dict[str, Any]:
    """The stack without the resource, its `Ref`s replaced by the ARN."""
    del stack["Resources"][logical_id]

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            if value == {"Ref": logical_id}:
                return arn
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    replaced = walk(stack)
    assert f'"{logical_id}"' not in json.dumps(replaced), f"{logical_id} is read other than by Ref"
    return replaced


def _sub_values(value: Any) -> Any:
    if isinstance(value, dict):
        assert not any("${" in k for k in value), f"a key still holds a reference: {list(value)}"
        return {k: _sub_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sub_values(v) for v in value]
    if isinstance(value, str) and "${" in value:
        return {"Fn::Sub": value}
    return value


VARIANTS = {
    "defaults": {},
    "every-option": {
        "Architecture": "x86_64",
        "NodeRoleName": "custom-node-role",
        "LogRetentionDays": "7",
        "WebhookReservedConcurrency": "5",
        "SweepSchedule": "rate(5 minutes)",
        "RebalanceRecommendations": "drain",
        # Subnet, security group and topic are made in moto first.
        "FunctionSubnetIds": "<subnets>",
        "FunctionSecurityGroupIds": "<security groups>",
        "AlarmTopicArn": "<topic>",
    },
}


@pytest.fixture
def aws(monkeypatch):
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        # AWSLambdaVPCAccessExecutionRole must exist to be attached.
        "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_expanded_stack_creates_in_moto(aws, variant):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=ARTIFACTS)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\n")
    s3.put_object(Bucket=ARTIFACTS, Key=ARTIFACT_KEY, Body=archive.getvalue())

    parameters = {"ClusterName": CLUSTER, **VARIANTS[variant]}
    if parameters.get("FunctionSubnetIds") == "<subnets>":
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"] for i in (1, 2)
        ]
        group = ec2.create_security_group(GroupName="nodewright", Description="functions", VpcId=vpc)
        parameters["FunctionSubnetIds"] = ",".join(subnets)
        parameters["FunctionSecurityGroupIds"] = group["GroupId"]
        parameters["AlarmTopicArn"] = boto3.client("sns", region_name=REGION).create_topic(Name="alarms")[
            "TopicArn"
        ]

    expanded = expand(parameters)
    stack = for_moto(expanded, parameters)
    cfn = boto3.client("cloudformation", region_name=REGION)
    cfn.create_stack(
        StackName="nodewright",
        TemplateBody=json.dumps(stack),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    [description] = cfn.describe_stacks(StackName="nodewright")["Stacks"]
    assert description["StackStatus"] == "CREATE_COMPLETE", description.get("StackStatusReason")
    physical = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cfn.list_stack_resources(StackName="nodewright")["StackResourceSummaries"]
    }
    assert set(physical) == set(stack["Resources"])
    assert "WebhookSecret" in expanded["Resources"] and "WebhookSecret" not in stack["Resources"]

    iam = boto3.client("iam", region_name=REGION)
    node_role = parameters.get("NodeRoleName") or f"nodewright-node-{CLUSTER}"
    assert iam.get_role(RoleName=node_role)["Role"]["RoleName"] == node_role
    profile = iam.get_instance_profile(InstanceProfileName=node_role)["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == [node_role]

    # moto's AWS::IAM::Role leaves ManagedPolicyArns out, so attach them the way CloudFormation
    # would (Fn::If on InVpc resolved for the variant): IAM refuses a policy ARN that does not
    # exist, and the attachments are checked role by role.
    in_vpc = bool(VARIANTS[variant].get("FunctionSubnetIds"))

    def attach(role_id: str) -> set[str]:
        role = physical[role_id].split("/")[-1]
        for arn in stack["Resources"][role_id]["Properties"].get("ManagedPolicyArns", []):
            if "Fn::If" in arn:
                condition, if_true, if_false = arn["Fn::If"]
                assert condition == "InVpc" and if_false == {"Ref": "AWS::NoValue"}
                if not in_vpc:
                    continue
                arn = if_true
            if "Ref" in arn:
                arn = physical[arn["Ref"]]
            else:
                arn = arn["Fn::Sub"].replace("${AWS::Partition}", "aws")
            iam.attach_role_policy(RoleName=role, PolicyArn=arn)
        return {p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]}

    vpc_policy = {"AWSLambdaVPCAccessExecutionRole"} if in_vpc else set()
    provisioning = iam.get_policy(PolicyArn=physical["ProvisioningPolicy"])["Policy"]["PolicyName"]
    termination = iam.get_policy(PolicyArn=physical["TerminationPolicy"])["Policy"]["PolicyName"]
    assert attach("ProvisionerRole") == {provisioning, termination} | vpc_policy
    assert attach("InterruptionRole") == {provisioning, termination} | vpc_policy
    hygiene = iam.get_policy(PolicyArn=physical["LaunchTemplateHygienePolicy"])["Policy"]["PolicyName"]
    profiles = iam.get_policy(PolicyArn=physical["InstanceProfileHygienePolicy"])["Policy"]["PolicyName"]
    assert attach("SweeperRole") == {provisioning, hygiene, profiles} | vpc_policy
    assert attach("WebhookRole") == set()
    for role_id in ("WebhookRole", "ProvisionerRole", "SweeperRole", "InterruptionRole"):
        assert len(iam.list_role_policies(RoleName=physical[role_id].split("/")[-1])["PolicyNames"]) == 1

    # The policy as IAM holds it: the cluster's tag keys, the node role, the table.
    version = iam.get_policy(PolicyArn=physical["ProvisioningPolicy"])["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=physical["ProvisioningPolicy"], VersionId=version)[
        "PolicyVersion"
    ]["Document"]
    if isinstance(document, str):
        document = json.loads(document)
    by_sid = {s["Sid"]: s for s in document["Statement"]}
    assert by_sid["PassNodeRole"]["Resource"] == iam.get_role(RoleName=node_role)["Role"]["Arn"]
    assert by_sid["ClaimsTable"]["Resource"].endswith(f":table/nodewright-{CLUSTER}-claims")
    assert f"aws:RequestTag/{CLUSTER_TAG}" in by_sid["LaunchTaggedInstances"]["Condition"]["StringEquals"]

    lam = boto3.client("lambda", region_name=REGION)
    for function_id, short in FUNCTIONS.items():
        # moto's AWS::Lambda::Function leaves Architectures out (every function is x86_64 there),
        # so the expanded template is what shows the parameter reaches every function.
        assert expanded["Resources"][function_id]["Properties"]["Architectures"] == [{"Ref": "Architecture"}]
        config = lam.get_function_configuration(FunctionName=f"nodewright-{CLUSTER}-{short}")
        assert config["Timeout"] == expanded["Resources"][function_id]["Properties"]["Timeout"]
        assert config["Role"].split("/")[-1] == physical[function_id.replace("Function", "Role")]
        subnets = config.get("VpcConfig", {}).get("SubnetIds") or []
        if in_vpc and function_id != "WebhookFunction":
            assert sorted(subnets) == sorted(parameters["FunctionSubnetIds"].split(","))
        else:
            assert not subnets

    # The webhook's secret is generated by the stack, URL-safe, and what its function reads.
    secret = boto3.client("secretsmanager", region_name=REGION).get_secret_value(
        SecretId=f"nodewright-{CLUSTER}-webhook"
    )
    assert len(secret["SecretString"]) == 40 and secret["SecretString"].isalnum()
    webhook = lam.get_function_configuration(FunctionName=f"nodewright-{CLUSTER}-webhook")
    assert webhook["Environment"]["Variables"]["NODEWRIGHT_WEBHOOK_SECRET_ID"] == secret["ARN"]

    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.get_queue_url(QueueName=f"nodewright-{CLUSTER}-provision.fifo")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "300"
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 5

    logs = boto3.client("logs", region_name=REGION)
    groups = {
        g["logGroupName"]: g.get("retentionInDays")
        for g in logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"]
    }
    retention = int(parameters.get("LogRetentionDays", "30"))
    assert groups == {f"/aws/lambda/nodewright-{CLUSTER}-{short}": retention for short in FUNCTIONS.values()}
