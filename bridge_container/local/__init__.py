"""Local stand-ins for AWS: mosquitto with a dev CA in place of IoT Core, moto in place of the control plane.

`make run` and the tests use the same pieces.
"""
