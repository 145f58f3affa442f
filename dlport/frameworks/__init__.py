"""One folder per framework, each with the same module names (as Keras 3's backends)."""
