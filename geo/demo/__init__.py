"""Demo scenes, demo runs and stand-in models."""
