"""The bridge service: LNS ingress over HTTP, a rate-limited MQTT 5 pool to AWS IoT Core, downlinks back."""
