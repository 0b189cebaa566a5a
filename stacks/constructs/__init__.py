"""Constructs of the stacks, one per concern."""
