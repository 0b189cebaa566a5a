"""Uplinks: the bounded buffer of a connection, its rate limits and the dispatch to OPENED MQTT clients.

:mod:`.limits` holds the pool's grants (aggregate and per client, publishes and bytes) on the shared arithmetic of
:mod:`bridge_domain.ratelimit`; :mod:`.pool` buffers and dispatches through the MQTT port. Nothing here imports
awscrt: the pool only knows :mod:`bridge_container.mqtt.port`.
"""
