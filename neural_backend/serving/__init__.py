"""The server: the ZeroMQ shell (``shell``), the one request-handling core and the engines that do the
work (``engines/``: local torch, Ray, echo). The shell and the core import no torch."""
