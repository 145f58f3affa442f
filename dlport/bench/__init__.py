"""``dlport bench``: throughput and time-to-quality of every framework, against baselines."""
