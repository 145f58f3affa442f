"""Keras 3 on its torch backend: eager steps, as Keras' own torch trainer takes them."""
