"""Engines: what does the work behind the request-handling core (local torch, Ray Serve, echo)."""
