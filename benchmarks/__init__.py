"""Benchmarks against local stand-ins (mosquitto with client certificates): ``python -m benchmarks`` runs them all."""
