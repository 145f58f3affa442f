"""The code a user writes first in each framework (the same module name per framework, as the
trainers have): ``idiomatic_fit(X, y, batch_size, epochs) -> list of per-epoch seconds``, plain
SGD with lr 0.01. The benchmark measures what dlport's trainers gain over them."""
