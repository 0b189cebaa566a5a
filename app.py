"""CDK app: the bridge's whole AWS setup from one configuration file (``cdk deploy -c config=FILE``).

Offline: no AWS credentials, no lookups and no Docker are needed to synthesize. An invalid configuration stops
the synth with every problem and its field path.
"""

from __future__ import annotations

import sys

from aws_cdk import App

from bridge_domain.exceptions import ConfigError
from stacks.app_builder import build_stacks
from stacks.config import load_deployment

DEFAULT_CONFIG = "config/example.json"


def main() -> int:
    app = App()
    config_path = str(app.node.try_get_context("config") or DEFAULT_CONFIG)
    try:
        deployment = load_deployment(config_path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for warning in deployment.configuration.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    build_stacks(app, deployment)
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
