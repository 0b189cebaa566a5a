"""LNS ingress: ThingPark, ChirpStack v4 and The Things Stack v3 uplinks, normalised once and rendered for MQTT."""
