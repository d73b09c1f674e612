"""learnguide.images."""
