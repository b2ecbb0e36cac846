"""Features: the tentacle pipeline, its streaming twin and the brain report."""
