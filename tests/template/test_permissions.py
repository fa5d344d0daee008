"""Least privilege, read from the template as CloudFormation sees it (cfn-lint's loader keeps
!Sub, !GetAtt and the rest as Fn:: objects): which AWS actions each function may call, on which
resources, under which conditions; which Kubernetes verbs the functions' groups get
(infra/rbac.yaml).

The expected action sets below are the calls the Rust code makes (shared/aws/src,
shared/kube/src, functions/*/src); a change there that needs a new permission must change both.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from stack_template import (
    TEMPLATE,
    RBAC,
    REGION,
    CLUSTER,
    FUNCTIONS,
    CLUSTER_TAG,
    NODEPOOL_TAG,
    CLAIM_TAG,
    REGION_TAG,
    NODECLASS_TAG,
    as_list,
    managed_policy_statements,
    role_statements,
    function_role,
    all_statements,
    text,
    condition_keys,
)

# --- What the code calls ------------------------------------------------------------------------

DESCRIBE = {
    "ec2:DescribeImages",  # ec2/ami.rs
    "ec2:DescribeInstances",  # ec2/instances.rs
    "ec2:DescribeInstanceTypeOfferings",  # catalog.rs
    "ec2:DescribeInstanceTypes",  # catalog.rs
    "ec2:DescribeLaunchTemplates",  # ec2/launch.rs, ec2/mod.rs
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
    "ec2:CreateFleet",  # ec2/fleet.rs
    "ec2:CreateLaunchTemplate",  # ec2/launch.rs
    "ec2:CreateTags",  # the TagSpecifications of the three creating calls
    "iam:PassRole",  # the launch template's instance profile, the role added to it
    "iam:GetInstanceProfile",  # ec2/instance_profile.rs: the node class's profile
    "iam:CreateInstanceProfile",
    "iam:TagInstanceProfile",  # tags on creation, and repaired on a profile found without them
    "iam:AddRoleToInstanceProfile",
    "iam:RemoveRoleFromInstanceProfile",  # the node class's role changed
    "dynamodb:GetItem",  # claims/
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
