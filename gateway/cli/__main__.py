"""``python -m gateway.cli``: the ``minimo`` command without the installed console script."""

from gateway.cli import main

main(prog_name="minimo")
