"""The SAM transform expands (samtranslator) and the expanded stack creates in moto's
CloudFormation, in its default form and with every option set.
"""

from __future__ import annotations

import copy
import io
import json
import re
import zipfile
from typing import Any

import boto3
import pytest
from stack_template import (
    REGION,
    CLUSTER,
    FUNCTIONS,
    CLUSTER_TAG,
    load_template,
)

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
    for resource in sam["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://{ARTIFACTS}/{ARTIFACT_KEY}"
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
