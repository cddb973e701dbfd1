"""Writing results: blending tiles, stitching chunks, the chunk store, the COG."""
