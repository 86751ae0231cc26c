"""The wire protocol, sans I/O: message framing and validation, the message registry, the passes and
saved-state message bodies, and the shared-memory segment format. No torch, no sockets."""
