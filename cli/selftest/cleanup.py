"""Deleting what a run made; what cannot be deleted is named."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from cli.selftest.clients import Aws, Listener
from cli.selftest.report import Reporter
from cli.selftest.target import Made, SelfTestError


async def cleanup(reporter: Reporter, aws: Aws, made: Made, listener: Listener | None) -> None:
    """Stop the MQTT client and delete what the run made; a failure is reported, not raised."""
    with contextlib.suppress(SelfTestError):
        async with reporter.step("cleanup") as detail:
            if listener is not None:
                await listener.stop()
            removed: list[str] = []
            problems: list[str] = []
            await asyncio.to_thread(_remove, aws, made, removed, problems)
            if problems:
                raise SelfTestError("; ".join(problems), "delete what is named here by hand")
            detail.append("deleted " + ", ".join(removed) if removed else "nothing to delete")


def _remove(aws: Aws, made: Made, removed: list[str], problems: list[str]) -> None:
    def attempt(what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in ("ResourceNotFoundException", "NotFound"):  # gone already: nothing to say
                problems.append(f"{what}: {code or exc}")
            return
        removed.append(what)

    if made.subscription_arn is not None:
        arn = made.subscription_arn
        attempt("subscription", lambda: aws.client("sns").unsubscribe(SubscriptionArn=arn))
    if made.queue_url is not None:
        url = made.queue_url
        attempt(f"queue {url.rsplit('/', 1)[-1]}", lambda: aws.client("sqs").delete_queue(QueueUrl=url))
    if made.shadow is not None:
        name = made.shadow
        attempt("shadow", lambda: aws.client("iot-data").delete_thing_shadow(thingName=name))
    for thing in made.things:
        attempt(f"thing {thing}", functools.partial(_delete_thing, aws.client("iot"), thing))


def _delete_thing(iot: Any, thing: str) -> None:
    for principal in iot.list_thing_principals(thingName=thing).get("principals", []):
        iot.detach_thing_principal(thingName=thing, principal=principal)
    iot.delete_thing(thingName=thing)
