"""Bundled datasets (see README.md here for their sources)."""
