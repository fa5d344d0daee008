"""The stack's shape: cfn-lint and `sam validate --lint` find nothing; the queues, schedules,
log groups, alarms and options hang together.
"""

from __future__ import annotations

import os
import subprocess
import sys

from cfnlint.api import lint_file
from stack_template import (
    TEMPLATE,
    REGION,
    FUNCTIONS,
    text,
)

# --- cfn-lint -----------------------------------------------------------------------------------


def test_cfn_lint_finds_nothing():
    matches = lint_file(TEMPLATE)
    assert not matches, "\n".join(str(m) for m in matches)


def test_sam_validate_lint_is_clean():
    # What `sam deploy` users run; offline, and without telemetry.
    # Run as a module of this interpreter: pip's script directory need not be on PATH.
    result = subprocess.run(
        [sys.executable, "-m", "samcli", "validate", "--lint", "--region", REGION, "--template", str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr



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
