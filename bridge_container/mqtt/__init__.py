"""MQTT for the bridge: the port the rest of the service talks to, its awscrt adapter, and held subscriptions.

:mod:`.port` (Protocols, settings, the completion contract) imports no awscrt; :mod:`.crt` is the only module of
the service that imports awscrt or awsiot; :mod:`.subscriptions` keeps a pool's filters on one OPENED client.
"""
