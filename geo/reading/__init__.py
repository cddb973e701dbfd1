"""Reading scenes: opening and validating rasters, bands and stretch, windowed reads, AOI."""
