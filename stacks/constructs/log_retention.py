"""CloudWatch Logs retention from the configuration's ``logRetentionDays``."""

from __future__ import annotations

from aws_cdk import aws_logs as logs

# CDK's enum members in ascending order of days; bridge_domain.deployment accepts exactly these periods.
_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)
_BY_DAYS = dict(zip(_DAYS, [member for member in logs.RetentionDays if member.name != "INFINITE"], strict=True))


def retention_days(days: int) -> logs.RetentionDays:
    """The retention period of ``days`` (one CloudWatch Logs accepts)."""
    return _BY_DAYS[days]
