"""Custom resource that owns the bridge's AWS IoT certificate: created at deploy time, removed on destroy."""
