"""Polygons from probability rasters."""
