"""``python -m neural_backend`` is the ``rigstyle`` command."""

from .cli.main import main

main()
