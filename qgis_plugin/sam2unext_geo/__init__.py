"""QGIS plugin entry point for SAM2-UNeXT Geo."""


def classFactory(iface):  # noqa: N802 - name required by QGIS
    """Create the plugin; ``iface`` is ``None`` under qgis_process (Processing only)."""
    from .plugin import Sam2UnextGeoPlugin

    return Sam2UnextGeoPlugin(iface)
