"""``python -m bigpaint`` runs the CLI."""

from bigpaint.cli import main

main()
