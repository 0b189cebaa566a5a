"""The catalog follows the store: a restart runs the stored connections, another task's changes are applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge_container.connections.catalog import ConnectionCatalog
from bridge_container.connections.sqlite_store import SqliteConnectionStore
from bridge_container.connections.store import AccountKey
from bridge_container.states import ConnectionState
from bridge_domain.connection import Connection
from devtools.pki import CertPair, DevPki
from tests.unit.connections.support import FakeRuntimes, seed_body


class OneAccount:
    """Every connection in one account (the certificate ARN decides anyway)."""

    async def account_of(self, connection: Connection) -> AccountKey:
        return AccountKey(connection.configuration.account_id or "123456789012", connection.configuration.region)


@pytest.fixture(scope="module")
def cert(pki: DevPki) -> CertPair:
    return pki.client("catalog-bridge")


def catalog(state_dir: Path, runtimes: FakeRuntimes) -> ConnectionCatalog:
    return ConnectionCatalog(SqliteConnectionStore(state_dir), runtimes, OneAccount())


async def test_a_restart_runs_every_stored_connection_again(tmp_path: Path, cert: CertPair) -> None:
    before = catalog(tmp_path, FakeRuntimes())
    first = await before.create(seed_body(cert))
    second = await before.create(seed_body(cert, region="eu-west-1"))
    await before.store.close()
    runtimes = FakeRuntimes()
    after = catalog(tmp_path, runtimes)
    assert after.state_of(first.connection_id) == ConnectionState.CLOSED
    await after.start()
    await after.stop()
    assert set(runtimes.running) == {first.connection_id, second.connection_id}
    assert after.state_of(first.connection_id) == ConnectionState.OPENED
    assert runtimes.running[first.connection_id] == first.connection


async def test_sync_applies_changes_made_through_another_task(tmp_path: Path, cert: CertPair) -> None:
    other_task = catalog(tmp_path, FakeRuntimes())
    runtimes = FakeRuntimes()
    this_task = catalog(tmp_path, runtimes)
    created = await other_task.create(seed_body(cert))
    await this_task.sync()
    assert runtimes.calls == [("add", created.connection_id)]
    await this_task.sync()  # nothing changed: nothing restarted
    assert len(runtimes.calls) == 1
    body = seed_body(cert)
    body["configuration"]["description"] = "changed elsewhere"
    await other_task.replace(created.connection_id, body)
    await this_task.sync()
    assert runtimes.running[created.connection_id].configuration.description == "changed elsewhere"
    await other_task.delete(created.connection_id)
    await this_task.sync()
    assert runtimes.calls[-1] == ("remove", created.connection_id)
    assert runtimes.running == {}


async def test_a_runtime_that_failed_to_start_is_retried_by_the_next_sync(tmp_path: Path, cert: CertPair) -> None:
    runtimes = FakeRuntimes(fail_next=True)
    subject = catalog(tmp_path, runtimes)
    created = await subject.create(seed_body(cert))
    assert created.connection_id not in runtimes.running
    assert subject.state_of(created.connection_id) == ConnectionState.CLOSED
    await subject.sync()
    assert created.connection_id in runtimes.running
