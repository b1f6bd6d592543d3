"""The Socket.IO stream between the server and its tabs, one for runs and shells alike: the declared
protocol, events read against it, the WebSocket's bounds and the flow control."""
