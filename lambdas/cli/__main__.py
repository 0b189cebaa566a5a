"""Entry point of ``python -m lambdas.cli``."""

import sys

from lambdas.cli.bulk_register import main

sys.exit(main())
