"""Running the model over a scene: tile grid, chunks, the chunk task, pools, devices, clusters, resume fingerprints."""
