"""Past one machine: what makes several labnb nodes one service (docs/cluster.md).

Every node is a whole labnb with its own lab hosts. PostgreSQL (the store)
holds what they share, Redis carries Socket.IO's events and the commands one
node sends another, and HAProxy in front pins each learner to a node and
places new ones by the weight each node reports to its agent-check. Nothing
here runs on one machine without ``LABNB_NODE``."""
