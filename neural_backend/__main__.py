"""``python -m neural_backend`` is the ``rigstyle`` command."""

from .cli import main

main()
