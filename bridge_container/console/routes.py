"""The console's pages under ``/console``: login, connections (list, create, edit, delete), dashboard, live view.

Every page but the login needs a session (see :mod:`.session`); every POST checks the session's CSRF token.
Connections are changed through the Connections API's catalog, so the console validates, stores and applies
exactly as ``POST /connections`` does. Responses are never cached and forbid framing and foreign scripts.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from prometheus_client import CollectorRegistry

from bridge_container.connections.catalog import ConnectionCatalog
from bridge_container.connections.documents import masked_document
from bridge_container.connections.exceptions import (
    AdminTokenError,
    ConnectionNotFoundError,
    ConnectionsError,
    InvalidConnectionError,
)
from bridge_container.connections.router import error_response
from bridge_container.connections.schemas import ConnectionView
from bridge_container.console import forms
from bridge_container.console.capture import UplinkWatch, newest_first
from bridge_container.console.dashboard import ClientEvents, RateHistory, read_figures, sparkline
from bridge_container.console.session import (
    COOKIE_NAME,
    COOKIE_PATH,
    CSRF_FIELD,
    CSRF_HEADER,
    Session,
    SessionKeeper,
)
from bridge_container.exceptions import UnknownConnectionError
from bridge_container.mqtt.port import InboundMessage
from bridge_container.runtime import ConnectionRuntime
from bridge_domain.deveui import is_dev_eui, normalise_dev_eui
from bridge_domain.lns import ChirpStackLns, ThingParkLns, TtsLns

logger = logging.getLogger(__name__)

PREFIX: Final = "/console"
MAX_FORM_BYTES: Final = 256 * 1024  # a connection with PEMs is a few KB
SHOWN_MESSAGES: Final = 20
_HERE = Path(__file__).parent
_SECURITY_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class ConsoleHost(Protocol):
    """What the console reads from the bridge service: the running connections and the metrics registry."""

    registry: CollectorRegistry

    def runtime(self, connection_id: str) -> ConnectionRuntime: ...


class Console:
    """The console's state: sessions, one uplink watch and one rate history per connection, logged client events."""

    def __init__(self, catalog: ConnectionCatalog, sessions: SessionKeeper, host: ConsoleHost) -> None:
        self.catalog = catalog
        self.sessions = sessions
        self.host = host
        self.watches: dict[str, UplinkWatch] = {}
        self.histories: dict[str, RateHistory] = {}
        self.events = ClientEvents()
        self.templates = Environment(
            loader=FileSystemLoader(_HERE / "templates"), autoescape=select_autoescape(default=True), auto_reload=False
        )

    def open(self) -> None:
        """Start keeping the MQTT clients' logged warnings (the "why" of their states)."""
        logging.getLogger("bridge_container").addHandler(self.events)

    def close(self) -> None:
        logging.getLogger("bridge_container").removeHandler(self.events)
        for watch in self.watches.values():
            watch.detach()

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.templates.get_template(name).render(prefix=PREFIX, **context)
        return HTMLResponse(html, status_code=status, headers=_SECURITY_HEADERS)

    def runtime(self, connection_id: str) -> ConnectionRuntime | None:
        try:
            return self.host.runtime(connection_id)
        except UnknownConnectionError:
            return None

    def watch(self, connection_id: str, runtime: ConnectionRuntime) -> UplinkWatch:
        """The live view's tap on this runtime's ingress (a replaced runtime gets a new one)."""
        watch = self.watches.get(connection_id)
        if watch is None or watch.ingress is not runtime.ingress:
            if watch is not None:
                watch.detach()
            watch = self.watches[connection_id] = UplinkWatch(runtime.ingress, runtime.pool)
        watch.touch()
        return watch


# --- helpers ----------------------------------------------------------------------------------------------------
async def _form(request: Request) -> dict[str, str]:
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        return {}
    return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))


def _to_login(request: Request) -> Response:
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": f"{PREFIX}/login"})
    return RedirectResponse(f"{PREFIX}/login", status_code=303)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"


def _base_url(request: Request) -> str:
    scheme = "https" if _secure(request) else request.url.scheme
    return f"{scheme}://{request.headers.get('host', request.url.netloc)}"


def lns_routes(base_url: str, connection_id: str, view: ConnectionView, lns: tuple[Any, ...]) -> list[dict[str, Any]]:
    """Where each network server must send uplinks, and the headers it must add (secret values never shown)."""
    url = f"{base_url}/connections/{connection_id}/uplinks"
    routes: list[dict[str, Any]] = []
    for entry in lns:
        if isinstance(entry, ThingParkLns):
            routes.append(
                {
                    "lns": "ThingPark (application server route, HTTPS)",
                    "url": f"{url}/thingpark",
                    "headers": ["Content-Type: application/json"],
                    "settings": [
                        f"AS ID: {entry.as_id}",
                        "Tunnel Interface Authentication Key: the connection's asKey"
                        if entry.as_key is not None
                        else "no asKey configured: ThingPark messages are not authenticated",
                        "Content type: JSON untyped or typed",
                    ],
                }
            )
        elif isinstance(entry, ChirpStackLns):
            routes.append(
                {
                    "lns": "ChirpStack v4 (HTTP integration)",
                    "url": f"{url}/chirpstack",
                    "headers": ["Authorization: Bearer <the connection's ingressToken>"],
                    "settings": ["Payload encoding: JSON", "Event endpoint URL: the URL above"],
                }
            )
        elif isinstance(entry, TtsLns):
            routes.append(
                {
                    "lns": "The Things Stack v3 (webhook)",
                    "url": f"{url}/tts",
                    "headers": ["Authorization: <the connection's ingressToken>"],
                    "settings": [
                        f"Webhook ID: {entry.webhook_id}",
                        "Webhook format: JSON",
                        "Enabled event types: Uplink message (path left empty: the base URL above)",
                    ],
                }
            )
    if view.configuration.get("batchIngressToken") is not None:
        routes.append(
            {
                "lns": "Batch (high-rate producers)",
                "url": f"{url}/batch",
                "headers": [
                    "Authorization: Bearer <the connection's batchIngressToken>",
                    "Content-Type: application/json",
                ],
                "settings": [],
            }
        )
    return routes


def _document_text(payload: bytes) -> str:
    try:
        return orjson.dumps(orjson.loads(payload), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return payload.decode("utf-8", "replace")


def _captured_rows(messages: list[Any]) -> list[dict[str, str]]:
    return [
        {
            "time": time.strftime("%H:%M:%S", time.localtime(message.at)),
            "topic": message.topic,
            "document": _document_text(message.payload),
            "properties": "  ".join(f"{name}={value}" for name, value in message.properties),
        }
        for message in messages
    ]


# --- the router -------------------------------------------------------------------------------------------------
def build_console_router(console: Console) -> APIRouter:
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    catalog, sessions = console.catalog, console.sessions

    async def session_of(request: Request) -> Session | None:
        return await sessions.read(request.cookies.get(COOKIE_NAME))

    async def checked_post(request: Request) -> tuple[Session | None, dict[str, str]]:
        """The session of a POST whose CSRF token matches, and its form; (None, {}) otherwise."""
        session = await session_of(request)
        form = await _form(request)
        presented = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
        if session is None or not session.csrf_matches(presented):
            return None, {}
        return session, form

    @router.get("")
    async def home() -> Response:
        return RedirectResponse(f"{PREFIX}/connections", status_code=303)

    @router.get("/login")
    async def login_page() -> Response:
        return console.render("login.html")

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await _form(request)
        try:
            cookie = await sessions.login(form.get("token") or None)
        except AdminTokenError as exc:
            logger.info("console login refused: %s", exc)
            return console.render("login.html", status=401, error="Wrong admin token, or none is configured.")
        response = RedirectResponse(f"{PREFIX}/connections", status_code=303)
        response.set_cookie(
            COOKIE_NAME,
            cookie,
            max_age=sessions.max_age_secs,
            path=COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=_secure(request),
        )
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        session, _form_data = await checked_post(request)
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        if session is not None:
            response.delete_cookie(COOKIE_NAME, path=COOKIE_PATH)
        return response

    # --- connections ----------------------------------------------------------------------------------------
    @router.get("/connections")
    async def list_page(request: Request) -> Response:
        session = await session_of(request)
        if session is None:
            return _to_login(request)
        views = [ConnectionView.of(record, catalog.report_of(record.connection_id)) for record in await catalog.list()]
        return console.render("connections.html", session=session, connections=views)

    def form_page(
        session: Session,
        *,
        status: int = 200,
        record_id: str | None = None,
        title: str,
        values: Mapping[str, str],
        stored: Mapping[str, Any] | None = None,
        errors: Mapping[str, list[str]] | None = None,
        general: list[str] | None = None,
    ) -> HTMLResponse:
        return console.render(
            "form.html",
            status=status,
            session=session,
            title=title,
            record_id=record_id,
            groups=forms.FORM,
            values=values,
            stored=forms.stored_secrets(stored),
            errors=errors or {},
            general=general or [],
        )

    async def submit(session: Session, form: dict[str, str], record_id: str | None) -> Response:
        stored = masked_document((await catalog.get(record_id)).connection) if record_id is not None else None
        built = forms.build_body(form, stored)
        title = "Edit connection" if record_id is not None else "New connection"
        shown = {name: value for name, value in form.items() if name != CSRF_FIELD}
        for group in forms.FORM:  # secrets are never sent back into a page, even the ones just typed
            for entry in group.fields:
                if entry.secret:
                    shown.pop(entry.name, None)
        try:
            record = await (catalog.replace(record_id, built.body) if record_id else catalog.create(built.body))
        except InvalidConnectionError as exc:
            by_input, general = forms.place_issues(list(exc.issues), built)
            return form_page(
                session, status=422, record_id=record_id, title=title, values=shown, stored=stored,
                errors=by_input, general=general,
            )  # fmt: skip
        except ConnectionNotFoundError:
            raise
        except ConnectionsError as exc:  # another connection holds the account and region, a lookup failed...
            return form_page(
                session, status=error_response(exc).status_code, record_id=record_id, title=title, values=shown,
                stored=stored, general=[str(exc)],
            )  # fmt: skip
        return RedirectResponse(f"{PREFIX}/connections/{record.connection_id}", status_code=303)

    @router.get("/connections/new")
    async def new_page(request: Request) -> Response:
        session = await session_of(request)
        if session is None:
            return _to_login(request)
        return form_page(session, title="New connection", values=forms.default_values())

    @router.post("/connections/new")
    async def create(request: Request) -> Response:
        session, form = await checked_post(request)
        if session is None:
            return _forbidden(console)
        return await submit(session, form, None)

    @router.get("/connections/{connection_id}/edit")
    async def edit_page(request: Request, connection_id: str) -> Response:
        session = await session_of(request)
        if session is None:
            return _to_login(request)
        try:
            record = await catalog.get(connection_id)
        except ConnectionNotFoundError:
            return console.render("missing.html", status=404, session=session, connection_id=connection_id)
        stored = masked_document(record.connection)
        return form_page(
            session, record_id=connection_id, title="Edit connection", values=forms.values_of(stored), stored=stored
        )

    @router.post("/connections/{connection_id}/edit")
    async def edit(request: Request, connection_id: str) -> Response:
        session, form = await checked_post(request)
        if session is None:
            return _forbidden(console)
        try:
            return await submit(session, form, connection_id)
        except ConnectionNotFoundError:
            return console.render("missing.html", status=404, session=session, connection_id=connection_id)

    @router.get("/connections/{connection_id}/delete")
    async def delete_page(request: Request, connection_id: str) -> Response:
        session = await session_of(request)
        if session is None:
            return _to_login(request)
        try:
            record = await catalog.get(connection_id)
        except ConnectionNotFoundError:
            return console.render("missing.html", status=404, session=session, connection_id=connection_id)
        return console.render("delete.html", session=session, record=record)

    @router.post("/connections/{connection_id}/delete")
    async def delete(request: Request, connection_id: str) -> Response:
        session, _form_data = await checked_post(request)
        if session is None:
            return _forbidden(console)
        try:
            await catalog.delete(connection_id)
        except ConnectionNotFoundError:
            pass  # already gone: the list shows it
        except ConnectionsError as exc:  # changed meanwhile, or the store failed
            status = error_response(exc).status_code
            return console.render("missing.html", status=status, session=session, error=str(exc))
        watch = console.watches.pop(connection_id, None)
        if watch is not None:
            watch.detach()
        console.histories.pop(connection_id, None)
        return RedirectResponse(f"{PREFIX}/connections", status_code=303)

    # --- dashboard --------------------------------------------------------------------------------------------
    async def view_of(connection_id: str) -> ConnectionView | None:
        try:
            record = await catalog.get(connection_id)
        except ConnectionNotFoundError:
            return None
        return ConnectionView.of(record, catalog.report_of(connection_id))

    @router.get("/connections/{connection_id}")
    async def dashboard(request: Request, connection_id: str) -> Response:
        session = await session_of(request)
        if session is None:
            return _to_login(request)
        view = await view_of(connection_id)
        if view is None:
            return console.render("missing.html", status=404, session=session, connection_id=connection_id)
        record = await catalog.get(connection_id)
        routes = lns_routes(_base_url(request), connection_id, view, record.connection.configuration.lns)
        return console.render("dashboard.html", session=session, view=view, routes=routes)

    @router.get("/connections/{connection_id}/panel")
    async def panel(request: Request, connection_id: str) -> Response:
        session = await session_of(request)
        if session is None:
            return _to_login(request)
        runtime = console.runtime(connection_id)
        if runtime is None:
            return console.render(
                "_panel.html",
                session=session,
                running=False,
                state_reason=catalog.report_of(connection_id).reason,
                connection_event=console.events.last(connection_id),
                format_time=lambda at: time.strftime("%H:%M:%S", time.localtime(at)),
            )
        figures = read_figures(console.host.registry, connection_id)
        history = console.histories.setdefault(connection_id, RateHistory())
        history.record(figures.total("bridge_uplinks_published_total"), figures.total("bridge_downlinks_sent_total"))
        rates = history.rates()
        report = runtime.report()
        clients = [  # the client's last error, else the last warning logged for it
            {"client_id": client.client_id, "state": client.state.value, "reason": client.reason,
             "event": console.events.last(client.client_id)}
            for client in report.clients
        ]  # fmt: skip
        budget = runtime.configuration.budget
        return console.render(
            "_panel.html",
            session=session,
            running=True,
            connection_id=connection_id,
            state=report.state.value,
            state_reason=catalog.report_of(connection_id).reason,
            clients=clients,
            connection_event=console.events.last(connection_id),
            figures=figures,
            uplink_line=sparkline([(ago, up) for ago, up, _down in rates]),
            downlink_line=sparkline([(ago, down) for ago, _up, down in rates]),
            uplink_rate=rates[-1][1] if rates else 0.0,
            downlink_rate=rates[-1][2] if rates else 0.0,
            peak_rate=max([max(up, down) for _ago, up, down in rates], default=0.0),
            depth=runtime.pool.depth,
            capacity=runtime.configuration.buffer_size,
            in_flight=runtime.pool.in_flight,
            budget=budget,
            configuration=runtime.configuration,
            format_time=lambda at: time.strftime("%H:%M:%S", time.localtime(at)),
        )

    # --- did it work ------------------------------------------------------------------------------------------
    @router.get("/connections/{connection_id}/live")
    async def live(request: Request, connection_id: str) -> Response:
        session = await session_of(request)
        if session is None:
            return _to_login(request)
        view = await view_of(connection_id)
        if view is None:
            return console.render("missing.html", status=404, session=session, connection_id=connection_id)
        record = await catalog.get(connection_id)
        configuration = record.connection.configuration
        return console.render(
            "live.html",
            session=session,
            view=view,
            lns_kinds=[entry.kind for entry in configuration.lns],
            downlink_port=configuration.downlink_port,
            downlinks_enabled=configuration.downlink_enabled,
        )

    @router.get("/connections/{connection_id}/live/uplinks")
    async def live_uplinks(request: Request, connection_id: str) -> Response:
        session = await session_of(request)
        if session is None:
            return _to_login(request)
        runtime = console.runtime(connection_id)
        if runtime is None:
            return console.render("_uplinks.html", running=False, devices=[], recent=[])
        watch = console.watch(connection_id, runtime)
        recent = newest_first(watch.tap.ring, SHOWN_MESSAGES)
        latest: dict[str, Any] = {}
        for message in recent:
            latest.setdefault(message.topic, message)
        return console.render(
            "_uplinks.html", running=True, devices=_captured_rows(list(latest.values())), recent=_captured_rows(recent)
        )

    @router.get("/connections/{connection_id}/live/feedback")
    async def live_feedback(request: Request, connection_id: str) -> Response:
        session = await session_of(request)
        if session is None:
            return _to_login(request)
        runtime = console.runtime(connection_id)
        messages = newest_first(runtime.feedback_log.ring, SHOWN_MESSAGES) if runtime is not None else []
        return console.render("_feedback.html", feedback=_captured_rows(messages))

    @router.post("/connections/{connection_id}/downlink")
    async def send_downlink(request: Request, connection_id: str) -> Response:
        session, form = await checked_post(request)
        if session is None:
            return _forbidden(console)
        runtime = console.runtime(connection_id)
        if runtime is None:
            return console.render("_sent.html", status=409, error="the connection does not run on this bridge task")
        dev_eui = form.get("devEui", "").strip()
        if not is_dev_eui(dev_eui):
            return console.render("_sent.html", status=422, error="DevEUI: 16 hexadecimal digits")
        document: dict[str, Any] = {
            "payload_hex": form.get("payloadHex", "").strip(),
            "correlationId": f"console-{secrets.token_hex(4)}",
            "confirmed": bool(form.get("confirmed")),
        }
        if form.get("fPort", "").strip():
            document["FPort"] = int(form["fPort"]) if form["fPort"].strip().isdigit() else form["fPort"]
        if form.get("lns"):
            document["lns"] = form["lns"]
        topic = runtime.configuration.downlink_pattern.render({"DevEUI": normalise_dev_eui(dev_eui)})
        # As if it arrived on the downlink topic: the same parse, rate limit, network-server call and feedback.
        await runtime.downlinks.handle(InboundMessage(topic, orjson.dumps(document)))
        return console.render("_sent.html", topic=topic, correlation_id=document["correlationId"])

    return router


def _forbidden(console: Console) -> HTMLResponse:
    return console.render(
        "missing.html", status=403, error="This form expired or was not sent from the console: reload and try again."
    )


def mount_console(app: Any, console: Console) -> None:
    """Add the console's pages and its static files to the bridge's FastAPI app."""
    app.include_router(build_console_router(console))
    app.mount(f"{PREFIX}/static", StaticFiles(directory=_HERE / "static"), name="console-static")
