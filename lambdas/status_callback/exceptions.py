"""Errors of the status-callback function::

StatusCallbackError
├── InvalidMessageError    the event or the rule's message does not match the models (never retried usefully)
└── WebhookDeliveryError   the webhook refused the change or stayed unreachable after every attempt
"""


class StatusCallbackError(Exception):
    """Base of every error the status-callback function raises."""


class InvalidMessageError(StatusCallbackError):
    """The SNS event, its topic or the rule output inside it is not what the IoT rules publish."""


class WebhookDeliveryError(StatusCallbackError):
    """The webhook answered 4xx, or 5xx / no answer on every attempt."""
