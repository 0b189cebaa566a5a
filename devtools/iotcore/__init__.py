"""An AWS IoT Core stand-in for development: an MQTT-aware TLS proxy that holds clients to IoT Core's rules.

mosquitto forgives what IoT Core punishes silently (more than 100 publishes a second on one connection, oversize
topics, reserved topics, a 51st subscription, reconnect storms, duplicate client IDs). The stand-in runs as its own
process in front of mosquitto's plain loopback listener, discards and refuses as AWS would, and counts each case
by reason and client ID for the tests, ``make run`` and the benchmarks to read.

``codec`` (MQTT framing) → ``rules`` (the accounting, pure) → ``proxy`` (asyncio listeners) → ``__main__``;
``client`` reads the counters from another process.
"""
