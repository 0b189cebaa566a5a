"""The AWS session of an operator command: one line saying what is missing instead of a botocore traceback."""

from __future__ import annotations

import os

import boto3
import botocore.exceptions


class MissingAwsSetupError(Exception):
    """No region, no credentials, or an unknown profile: the message says which and how to provide it."""


def aws_session(profile: str | None, region: str | None) -> boto3.session.Session:
    """A session with a region and credentials, or :class:`MissingAwsSetupError` naming what is missing."""
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
    except botocore.exceptions.ProfileNotFound:
        name = profile or os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE")
        raise MissingAwsSetupError(
            f"AWS profile {name!r} is not in ~/.aws/config or ~/.aws/credentials; check --profile or AWS_PROFILE"
        ) from None
    if not session.region_name:
        raise MissingAwsSetupError(
            "no AWS region: pass --region, set AWS_DEFAULT_REGION, or set region in the profile (aws configure)"
        )
    try:
        credentials = session.get_credentials()
    except botocore.exceptions.BotoCoreError as exc:  # e.g. an SSO session that has expired
        raise MissingAwsSetupError(f"AWS credentials could not be loaded: {exc}") from None
    if credentials is None:
        raise MissingAwsSetupError(
            "no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run aws configure "
            "(or aws sso login)"
        )
    return session
