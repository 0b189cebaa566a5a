"""Which AWS account a connection serves: from its certificate ARN, its access key, or the bridge's own role.

The seed allows one connection per account and region; the store keeps that key unique.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from bridge_container.connections.exceptions import AccountLookupError
from bridge_container.connections.store import AccountKey
from bridge_domain.connection import Connection


class AccountResolver(Protocol):
    async def account_of(self, connection: Connection) -> AccountKey: ...


class StsAccountResolver:
    """Certificate ARN first (no API call); then STS GetAccessKeyInfo for an access key; else the caller's account.

    Results are cached: an access key never changes account, nor does the bridge's own role.
    """

    def __init__(self, sts_client: Callable[[], Any]) -> None:
        self._sts_client = sts_client
        self._by_access_key: dict[str, str] = {}
        self._own_account: str | None = None

    async def account_of(self, connection: Connection) -> AccountKey:
        configuration = connection.configuration
        account = configuration.account_id
        if account is None and configuration.access_key_id is not None:
            account = await self._access_key_account(configuration.access_key_id)
        if account is None:
            account = await self._caller_account()
        return AccountKey(account, configuration.region)

    async def _access_key_account(self, access_key_id: str) -> str:
        if access_key_id not in self._by_access_key:
            response = await self._call(
                "GetAccessKeyInfo", lambda: self._sts_client().get_access_key_info(AccessKeyId=access_key_id)
            )
            self._by_access_key[access_key_id] = str(response["Account"])
        return self._by_access_key[access_key_id]

    async def _caller_account(self) -> str:
        if self._own_account is None:
            response = await self._call("GetCallerIdentity", lambda: self._sts_client().get_caller_identity())
            self._own_account = str(response["Account"])
        return self._own_account

    @staticmethod
    async def _call(operation: str, call: Callable[[], Any]) -> Any:
        try:
            return await asyncio.to_thread(call)
        except (ClientError, BotoCoreError) as exc:
            raise AccountLookupError(f"STS {operation} failed: {exc}") from exc
