"""Errors of the teardown functions."""


class TeardownError(Exception):
    """Base of every error the teardown functions raise."""


class InvalidRequestError(TeardownError):
    """The event is not a CloudFormation custom-resource request."""


class TeardownStuckError(TeardownError):
    """A whole pass removed nothing while some things kept failing: retrying would not help."""
