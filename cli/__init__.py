"""The ``sam2unext-geo`` command: a thin typer layer over :mod:`sam2unext` and :mod:`sam2unext.geo`."""
