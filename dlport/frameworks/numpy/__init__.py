"""The reference port: the canonical math, written by hand."""
