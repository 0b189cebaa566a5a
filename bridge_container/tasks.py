"""The service's background work: long-lived loops run in one ``asyncio.TaskGroup``, so that a crash stops it.

:meth:`BridgeService.run <bridge_container.service.BridgeService.run>` opens the group with :func:`supervised`;
every long-lived loop (HTTP server, metric flush, catalog sync, each connection's dispatcher, reaper, registrar,
downlink dispatcher and feedback workers) starts with :func:`spawn`, which finds the group through a context
variable. A task that raises makes the group cancel the others; the service then stops with that error and the
process exits non-zero. Outside a running service (unit tests, tools) :func:`spawn` makes a plain task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

_GROUP: ContextVar[asyncio.TaskGroup | None] = ContextVar("bridge_task_group", default=None)


def spawn(work: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """Start long-lived background work, in the service's task group when one is running."""
    group = _GROUP.get()
    if group is not None:
        with contextlib.suppress(RuntimeError):  # the group is already stopping: the work runs on its own
            task = group.create_task(work, name=name)
            task.add_done_callback(_name_the_failure)
            return task
    return asyncio.get_running_loop().create_task(work, name=name)


def _name_the_failure(task: asyncio.Task[Any]) -> None:
    # The group keeps the exception object itself, so a note added here shows in the error the service ends with.
    if not task.cancelled() and isinstance(error := task.exception(), Exception):
        error.add_note(f"in background task {task.get_name()!r}")


@contextlib.asynccontextmanager
async def supervised() -> AsyncIterator[asyncio.TaskGroup]:
    """The task group of one service run; :func:`spawn` uses it inside this block and in tasks started from it."""
    async with asyncio.TaskGroup() as group:
        token = _GROUP.set(group)
        try:
            yield group
        finally:
            _GROUP.reset(token)
