"""What train prints: the data it trains on, the summary; a reader that went away."""

from __future__ import annotations

import os


def names_columns(source: str) -> bool:
    """Whether a data source has columns to pick a target from (not an NPZ or synthetic data)."""
    return not (source.endswith(".npz") or source.startswith("synthetic"))


def named_target(saved_data: dict) -> str | None:
    """The saved target where the data names its columns."""
    return saved_data["target"] if names_columns(saved_data["source"]) else None


def describe_columns(data, target: str | None, shown: int = 8) -> str:
    """What trains on what, said before training: the target is otherwise a silent default."""
    names = list(data.feature_names)
    features = ", ".join(names[:shown]) + (
        f", ... ({len(names)} in all)" if len(names) > shown else ""
    )
    how = (
        " (--target)"
        if target
        else " (the last column; --target NAME picks another)"
        if names_columns(data.source)
        else ""
    )
    streamed = ""
    if hasattr(data, "window_rows"):
        from dlport.common.stream import format_size

        streamed = (
            f"; streamed (past --max-memory {format_size(data.max_memory)}): "
            f"{data.window_rows} rows at a time"
        )
    return (
        f"data {data.source}: {data.n_samples} rows; target {data.target_name!r}{how}; "
        f"features: {features}{streamed}"
    )


def print_summary(result, file) -> None:
    from dlport.console import print_table

    timing = result.timing
    speed = timing.get("steps_per_second")
    print(
        f"{result.framework} {result.framework_version} on {result.device}, {result.dtype}, "
        f"{result.config['solver']}"
        + ("" if result.config["solver"] == "exact" else f" {result.config['optimizer']}")
        + f": fit {timing['fit_seconds']:.3f} s"
        + (f", {speed:,.0f} steps/s" if speed else ""),
        file=file,
    )
    if result.history["loss"]:
        print(f"final epoch loss (standardized): {result.history['loss'][-1]:.6g}", file=file)
    validation = result.history.get("val_loss")
    if validation:
        print(_validation_line(result, validation), file=file)
    held_out = result.data.get("validation_rows")
    title = "metrics (training data" + (f"; val_: {held_out} held-out rows)" if held_out else ")")
    print_table(title, ["metric", "value"], list(result.metrics.items()), file=file)
    rows = list(zip(result.data["feature_names"], result.weights, strict=True)) + [
        ("(bias)", result.bias)
    ]
    print_table(
        f"weights (original units, target {result.data['target']})",
        ["feature", "weight"],
        rows,
        file=file,
    )


def reader_gone(stream) -> None:
    """Point ``stream`` at /dev/null: what is still printed (and Python's flush at exit) goes
    nowhere instead of failing again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


def _validation_line(result, losses: list[float]) -> str:
    config, best = result.config, min(range(len(losses)), key=losses.__getitem__)
    line = f"validation loss: {losses[-1]:.6g}, best {losses[best]:.6g} at epoch {best + 1}"
    if len(losses) < config["epochs"]:
        line += f"; early stopping ended the run after epoch {len(losses)}"
    if config.get("restore_best"):
        line += f"; the weights are epoch {best + 1}'s (--restore-best)"
    return line
