"""Domain code shared by the CDK app, the bridge container and the Lambdas.

Exceptions raised here derive from one base::

    BridgeDomainError
    ├── ConfigError        a connection configuration failed validation (every issue, with its field path)
    └── TopicError         a topic pattern or a value rendered into it breaks an AWS IoT topic rule
        └── TopicValueError    a value would add a level or a wildcard, or is empty
    InvalidDevEuiError     (a ValueError too) a DevEUI is not 16 hexadecimal digits
"""
