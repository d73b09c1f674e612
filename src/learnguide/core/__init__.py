"""learnguide.core."""
