"""AWS Lambda functions of the bridge: thing registration, status callback, teardown (one package each)."""
