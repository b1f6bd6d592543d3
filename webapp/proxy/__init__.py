"""Lab hosts' web services in the browser: the ports that listen in a lab host, and the gateway that
serves each at a host name of its own from inside the lab host (docs/web-services.md)."""
