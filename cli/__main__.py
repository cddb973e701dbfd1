"""``python -m sam2unext.cli`` runs the ``sam2unext-geo`` command."""

from sam2unext.cli.main import run

run()
