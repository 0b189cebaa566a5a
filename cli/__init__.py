"""Operator command line: bulk thing registration from a CSV file (``python -m cli --help``)."""
