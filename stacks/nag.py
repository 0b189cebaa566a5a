"""cdk-nag (AwsSolutions) on every synth, and the one way this app acknowledges a finding: with a written reason.

cdk-nag 3 acknowledges findings through CDK's own ``Validations``; a rule that reports several findings on one
resource (IAM5: one per wildcard) is acknowledged finding by finding, ``RuleId[Finding]``.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import Construct, IConstruct

MIN_REASON_CHARS = 40  # a reason a reviewer can check, not a placeholder


def add_checks(app: Construct) -> None:
    """Run the AwsSolutions pack over the whole app when it synthesizes."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(construct: IConstruct, rule: str, *, reason: str, finding: str | None = None) -> None:
    """Accept one finding of ``rule`` on ``construct`` (and its children) for ``reason``."""
    if len(reason) < MIN_REASON_CHARS:
        raise ValueError(f"the reason for acknowledging {rule} must explain it (at least {MIN_REASON_CHARS} chars)")
    rule_id = rule if finding is None else f"{rule}[{finding}]"
    Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def logical_id(construct: IConstruct) -> str:
    """The CloudFormation logical ID of ``construct`` (its default child when it is an L2)."""
    element = construct if isinstance(construct, CfnElement) else construct.node.default_child
    if not isinstance(element, CfnElement):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource")
    return Stack.of(element).resolve(element.logical_id)  # type: ignore[no-any-return]


def arn_finding(construct: IConstruct, suffix: str = "", attribute: str = "Arn") -> str:
    """How cdk-nag names a wildcard under a resource's ARN: ``Resource::<LogicalId.Arn>:*``."""
    return f"Resource::<{logical_id(construct)}.{attribute}>{suffix}"


def flatten_reference(node: Any) -> str:
    """A resolved CloudFormation value as cdk-nag prints it in a finding (its ``flattenCfnReference``)."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return str(delimiter).join(flatten_reference(item) for item in items)
        if "Fn::Sub" in node:
            return flatten_reference(node["Fn::Sub"])
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return f"<{flatten_reference(resource)}.{flatten_reference(attribute)}>"
        if "Fn::ImportValue" in node:
            return flatten_reference(node["Fn::ImportValue"])
        if "Ref" in node:
            return f"<{flatten_reference(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))


def resource_finding(scope: IConstruct, resource: str) -> str:
    """The IAM5 finding for a wildcard ``resource`` (a string that may hold tokens) used in ``scope``'s stack."""
    return "Resource::" + flatten_reference(Stack.of(scope).resolve(resource))
