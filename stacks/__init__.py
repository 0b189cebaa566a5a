"""The CDK app's stacks: data, IoT account setup and the bridge service, one per deployable unit.

A stack composes; the constructs in ``stacks.constructs`` build, one per concern. Errors raised here derive from
``bridge_domain.exceptions.ConfigError`` (an invalid configuration stops the synth with each field path).
"""
