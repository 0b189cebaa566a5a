"""The bridge's OpenAPI document, built from the app as ``python -m bridge_container`` composes it, and committed.

``python -m bridge_container.connections.openapi`` writes ``openapi/bridge.json``; ``--check`` exits 1 when the
committed document no longer matches the code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bridge_container.settings import EnvVar, ServiceSettings

DOCUMENT_PATH = Path("openapi/bridge.json")


@contextlib.contextmanager
def _scratch_state_dir() -> Iterator[None]:
    """The Connections API opens its store when composed: point it at a throwaway directory."""
    saved = os.environ.get(EnvVar.STATE_DIR)
    with tempfile.TemporaryDirectory() as scratch:
        os.environ[EnvVar.STATE_DIR] = scratch
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop(EnvVar.STATE_DIR, None)
            else:
                os.environ[EnvVar.STATE_DIR] = saved


def build_document() -> dict[str, Any]:
    # imported here: the service imports this package's factory, and the document needs the whole service
    from bridge_container.connections.factory import build_connections_api
    from bridge_container.service import BridgeService

    with _scratch_state_dir():
        logging.disable(logging.WARNING)  # no admin token is configured here, and that is fine for a document
        try:
            service = BridgeService(ServiceSettings(task_id="openapi"), connections_api=build_connections_api)
            return service.fastapi.openapi()
        finally:
            logging.disable(logging.NOTSET)


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge_container.connections.openapi", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare with the committed document instead of writing")
    parser.add_argument("--path", type=Path, default=DOCUMENT_PATH)
    args = parser.parse_args(argv)
    text = render(build_document())
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.exists() else ""
        if current != text:
            print(f"{args.path} is out of date: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(text, encoding="utf-8")
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
