"""The operator console: server-rendered pages (Jinja2, htmx) over the Connections API's catalog and the runtimes."""
