"""The network picture: a lab host's namespaces, interfaces, veth pairs and bridges, read from the lab
host itself, laid out, and served as JSON and SVG (docs/network.md)."""
