"""``python -m funnelprint.cli``: the same entry point as the ``funnelprint`` command."""

from funnelprint.cli import main

main()
