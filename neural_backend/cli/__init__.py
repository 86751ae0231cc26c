"""The ``rigstyle`` command: one module per command group (``main`` builds the group)."""
