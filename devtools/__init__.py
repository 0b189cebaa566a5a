"""Development tools, never in the image: local stand-ins for AWS (mosquitto with a dev CA in place of IoT Core,
moto in place of the control plane), simulated network servers and the local LNS downlink API.

`make run`, the tests and the benchmarks use the same pieces; the product (`bridge_container`, `bridge_domain`)
never imports this package.
"""
