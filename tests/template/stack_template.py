"""The stack's template (template.yaml) and RBAC (infra/rbac.yaml) as the checks read them:
loaded as CloudFormation sees them, with IAM policies read statically (`!Sub` substituted with
stand-ins). Shared by the tests of this directory; the fixtures are in conftest.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
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


# The tags shared/aws/src/ec2/launch.rs puts on what it creates.
CLUSTER_TAG = f"kubernetes.io/cluster/{CLUSTER}"
NODEPOOL_TAG = "karpenter.sh/nodepool"
CLAIM_TAG = "nodewright.io/nodeclaim"
# The tags shared/aws/src/ec2/instance_profile.rs puts on the profiles it makes (Karpenter's).
REGION_TAG = "topology.kubernetes.io/region"
NODECLASS_TAG = "karpenter.k8s.aws/ec2nodeclass"


def load_template() -> dict[str, Any]:
    # cfn-lint's loader understands the short intrinsic forms; the JSON round trip makes its
    # node types plain dicts, lists and strings.
    return json.loads(json.dumps(cfn_yaml.load(str(TEMPLATE))))



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
