"""Clients of the socket API: the blocking :class:`~.blocking.Client`, the preview client and the backend
pool with failover. No torch."""
