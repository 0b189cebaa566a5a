"""The Connections API routes (``/connections``), guarded by the admin token; errors mapped in one place."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bridge_container.connections.auth import AdminAuth
from bridge_container.connections.catalog import ConnectionCatalog
from bridge_container.connections.exceptions import (
    AccountLookupError,
    AdminTokenError,
    BodyTooLargeError,
    ConnectionConflictError,
    ConnectionNotFoundError,
    ConnectionsError,
    DuplicateAccountError,
    InvalidConnectionError,
    MalformedBodyError,
    StaleWriteError,
    StoreError,
    UnknownConnectorError,
)
from bridge_container.connections.schemas import ConnectionList, ConnectionView, ErrorBody, connection_request_schema

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024  # a connection with PEMs and keys is a few KB
RETRY_AFTER_SECS = 5

# (error class, status, code): the first match wins, so subclasses come before their bases.
_ERRORS: tuple[tuple[type[ConnectionsError], int, str], ...] = (
    (AdminTokenError, 401, "unauthorized"),
    (MalformedBodyError, 400, "malformed_body"),
    (UnknownConnectorError, 400, "unknown_connector"),
    (ConnectionNotFoundError, 404, "not_found"),
    (DuplicateAccountError, 409, "duplicate_account"),
    (StaleWriteError, 409, "concurrent_change"),
    (ConnectionConflictError, 409, "conflict"),
    (BodyTooLargeError, 413, "body_too_large"),
    (InvalidConnectionError, 422, "invalid_connection"),
    (AccountLookupError, 503, "account_lookup_failed"),
    (StoreError, 500, "store_failed"),
)


def error_response(exc: ConnectionsError) -> JSONResponse:
    status, code = next(((status, code) for kind, status, code in _ERRORS if isinstance(exc, kind)), (500, "internal"))
    issues = exc.issues if isinstance(exc, InvalidConnectionError) else ()
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_SECS)
    body = ErrorBody.of(code, str(exc), issues).model_dump(mode="json")
    return JSONResponse(body, status_code=status, headers=headers)


class ConnectionsRoute(APIRoute):
    """Turns every ConnectionsError, including the admin check's, into its documented status and ErrorBody."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ConnectionsError as exc:
                response = error_response(exc)
                if response.status_code >= 500:
                    logger.error("%s %s failed: %s", request.method, request.url.path, exc)
                else:
                    logger.info("%s %s refused (%d): %s", request.method, request.url.path, response.status_code, exc)
                return response

        return handle


def _documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Malformed JSON, or an unknown connectorId",
        401: "Missing or wrong admin token",
        404: "No such connection",
        409: "Another connection serves this AWS account and region, or the connection changed concurrently",
        413: "Body too large",
        422: "Invalid connection: every problem with its field path",
        500: "The connection store failed",
        503: "The AWS account of the credentials could not be determined; retry",
    }
    return {status: {"model": ErrorBody, "description": descriptions[status]} for status in (401, 500, *statuses)}


def _body_spec() -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": "The seed's connection document: connectorId, name, configuration. A PUT sends it whole; "
            "'**********' keeps a stored secret; certificate fields left out keep their stored values.",
            "content": {"application/json": {"schema": connection_request_schema()}},
        }
    }


async def _json_body(request: Request) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLargeError(f"body larger than {MAX_BODY_BYTES} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise BodyTooLargeError(f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise MalformedBodyError(f"body is not valid JSON: {exc}") from None


_BEARER = HTTPBearer(auto_error=False, description="The admin token (BRIDGE_ADMIN_TOKEN or its secret).")


class RequireAdmin:
    """The dependency guarding every route (a class, so FastAPI resolves its annotations at module level)."""

    def __init__(self, auth: AdminAuth) -> None:
        self.auth = auth

    async def __call__(self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]) -> None:
        await self.auth.check(credentials.credentials if credentials is not None else None)


def build_router(catalog: ConnectionCatalog, auth: AdminAuth) -> APIRouter:
    """The ``/connections`` routes for ``catalog``; include it in the bridge's FastAPI app."""
    router = APIRouter(
        prefix="/connections",
        tags=["connections"],
        dependencies=[Depends(RequireAdmin(auth))],
        route_class=ConnectionsRoute,
    )

    def view(record: Any) -> ConnectionView:
        return ConnectionView.of(record, catalog.report_of(record.connection_id))

    @router.post(
        "",
        status_code=201,
        response_model=ConnectionView,
        responses=_documented(400, 409, 413, 422, 503),
        openapi_extra=_body_spec(),
        summary="Create a connection and start it",
    )
    async def create_connection(request: Request, response: Response) -> ConnectionView:
        record = await catalog.create(await _json_body(request))
        response.headers["Location"] = f"{request.url.path.rstrip('/')}/{record.connection_id}"
        return view(record)

    @router.get("", response_model=ConnectionList, responses=_documented(), summary="List connections")
    async def list_connections() -> ConnectionList:
        return ConnectionList(connections=[view(record) for record in await catalog.list()])

    @router.get(
        "/{connection_id}", response_model=ConnectionView, responses=_documented(404), summary="Read one connection"
    )
    async def get_connection(connection_id: str) -> ConnectionView:
        return view(await catalog.get(connection_id))

    @router.put(
        "/{connection_id}",
        response_model=ConnectionView,
        responses=_documented(400, 404, 409, 413, 422, 503),
        openapi_extra=_body_spec(),
        summary="Replace a connection whole and restart it",
    )
    async def replace_connection(connection_id: str, request: Request) -> ConnectionView:
        return view(await catalog.replace(connection_id, await _json_body(request)))

    @router.delete(
        "/{connection_id}",
        status_code=204,
        response_class=Response,
        responses=_documented(404, 409),
        summary="Drain and stop a connection, then delete it",
    )
    async def delete_connection(connection_id: str) -> Response:
        await catalog.delete(connection_id)
        return Response(status_code=204)

    return router
