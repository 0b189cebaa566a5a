"""Entry point of ``python -m cli``."""

import sys

from cli.bulk_register import main

sys.exit(main())
