"""The judge: metrics, the observation-support check and report shaping."""
