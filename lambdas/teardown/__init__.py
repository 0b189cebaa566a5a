"""Teardown custom resource: on stack deletion, removes the things the bridge registered and nothing else."""
