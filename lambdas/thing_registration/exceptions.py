"""Errors of the thing-registration function."""


class ThingRegistrationError(Exception):
    """Base of every error the thing-registration function raises."""


class InvalidRequestError(ThingRegistrationError):
    """The invocation payload is not ``{"devEuis": [...]}`` within the batch limit."""
