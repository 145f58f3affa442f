"""``dlport compare``: every framework in its own environment, one parity report."""
