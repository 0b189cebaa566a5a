"""The Connections API: create, replace, delete and read connections, stored durably and applied live."""
