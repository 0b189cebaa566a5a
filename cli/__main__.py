"""Entry point of ``python -m cli``: ``selftest ...`` proves a deployment, anything else is a bulk registration."""

import sys

if sys.argv[1:2] == ["selftest"]:
    from cli.selftest import main as selftest

    sys.exit(selftest(sys.argv[2:]))

from cli.bulk_register import main

sys.exit(main())
