"""learnguide.apps."""
