"""The orchestration: the reference in-process, each framework in its env, parity for each."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlport.common.config import OPTIMIZERS, TrainConfig
from dlport.common.conventions import Conventions
from dlport.common.data import Dataset, save_npz
from dlport.common.envs import Outcome, find_python, run_train
from dlport.common.errors import DlportError
from dlport.common.fitting import with_intercept
from dlport.common.metrics import regression_metrics
from dlport.common.progress import progress_bar
from dlport.common.registry import FRAMEWORKS
from dlport.common.results import TrainResult
from dlport.common.stream import ArrayBlocks, StreamedDataset, in_memory_bytes
from dlport.compare.parity import Parity, measure, pairwise
from dlport.frameworks.numpy.trainer import NumpyTrainer

CASES = (*OPTIMIZERS, "exact")
REFERENCE = "numpy"


def parse_cases(text: str) -> list[str]:
    cases = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown or not cases:
        raise DlportError(f"unknown optimizer(s) {unknown}; choose from: {', '.join(CASES)}")
    return cases


def case_config(base: TrainConfig, case: str) -> TrainConfig:
    if case == "exact":
        if base.loss != "mse":
            raise DlportError(
                f"the exact case fits squared error, not --loss {base.loss}; leave exact out of "
                "--optimizers"
            )
        # gradient descent's own options go, as its lr does (early stopping would be refused)
        return base.replace(solver="exact", early_stopping=None, restore_best=False)
    return base.replace(optimizer=case, solver="gd")


@dataclass
class Row:
    outcome: Outcome
    reference: TrainResult | None = None  # the NumPy reference of its conventions
    parity: Parity | None = None


@dataclass
class Case:
    name: str
    config: TrainConfig
    reference: TrainResult  # the canonical NumPy reference, run in-process
    rows: dict[str, Row] = field(default_factory=dict)
    pairwise: dict = field(default_factory=dict)

    def results(self) -> dict[str, TrainResult]:
        ran = {n: r.outcome.result for n, r in self.rows.items() if r.outcome.ok}
        return {REFERENCE: self.reference, **ran}


@dataclass
class Comparison:
    data: Dataset
    base: TrainConfig
    frameworks: list[str]
    cases: list[Case]
    optimum: dict[str, object]

    @property
    def all_ran(self) -> bool:
        return all(row.outcome.ok for case in self.cases for row in case.rows.values())

    @property
    def all_agree(self) -> bool:
        return all(
            row.parity.passed for case in self.cases for row in case.rows.values() if row.parity
        )


def not_asked_for(result: TrainResult, config: TrainConfig, data: Dataset) -> str:
    """Why a well-formed result is not the run compare asked for ('' if it is): parity is
    measured only between runs of the same config on the same data."""
    asked = config.to_dict()
    differ = sorted(k for k in {*asked, *result.config} if result.config.get(k) != asked.get(k))
    if differ:
        return f"result is for another config (differs in {', '.join(differ)})"
    rows = result.data["n_samples"] + result.data.get("validation_rows", 0)
    if (rows, result.data["feature_names"]) != (data.n_samples, list(data.feature_names)):
        return "result is for other data (samples or feature names differ)"
    got, want = len(result.history["loss"]), 0 if config.solver == "exact" else config.epochs
    if got != want and not (config.early_stopping and 0 < got < want):
        return f"result has {got} epochs of loss history, not {want}"
    return ""


def least_squares_optimum(data: Dataset | StreamedDataset) -> dict[str, object]:
    if isinstance(data, StreamedDataset):  # the exact solver's one pass
        exact = NumpyTrainer().fit(data, TrainConfig(solver="exact"))
        return {"weights": exact.weights, "bias": exact.bias, "metrics": exact.metrics}
    design = with_intercept(data.X)
    coef = np.linalg.lstsq(design, data.y, rcond=None)[0]
    return {
        "weights": coef[:-1].tolist(),
        "bias": float(coef[-1]),
        "metrics": regression_metrics(data.y, design @ coef),
    }


def _data_for_children(data: Dataset | StreamedDataset, out: Path) -> list[str]:
    """What each child loads: the parent's data as an NPZ, or a streamed file (Parquet, CSV)
    itself, with the parent's --max-memory: streamed data streams in each child in the same
    blocks and batch order, and data the parent holds stays in memory, whatever memory a child
    finds available."""
    if isinstance(data, StreamedDataset) and not isinstance(data.blocks, ArrayBlocks):
        path = Path(data.source).absolute()
        return [f"--data={path}", f"--target={data.target_name}", f"--max-memory={data.max_memory}"]
    path = out / "data.npz"
    if isinstance(data, StreamedDataset):  # arrays in memory, streamed past the budget
        blocks = data.blocks
        arrays = Dataset(blocks.X, blocks.y, data.feature_names, data.target_name, data.source)
        save_npz(arrays, path)
        return [f"--data={path}", f"--max-memory={data.max_memory}"]
    save_npz(data, path)
    return [
        f"--data={path}",
        f"--max-memory={in_memory_bytes(data.n_samples, data.n_features + 1)}",
    ]


def compare(
    data: Dataset,
    base: TrainConfig,
    frameworks: list[str],
    cases: list[str],
    out: Path,
    train_args,  # (TrainConfig) -> CLI arguments for `dlport train`
    overrides: dict[str, str],
    timeout: float,
    workers: int = 1,
    progress: bool = True,
) -> Comparison:
    """Each framework trained in its own process (``workers`` of them, data-parallel, for
    those with an engine), each case against the NumPy reference of its conventions."""
    out = out.absolute()  # the children run in a directory of their own
    data_args = _data_for_children(data, out)
    pythons = {name: find_python(name, overrides) for name in frameworks}
    references: dict[tuple, TrainResult] = {}

    def reference(config: TrainConfig, conventions: Conventions) -> TrainResult:
        # float64 on the CPU: float32 runs are held to the exact math, not to NumPy's float32.
        key = (config.optimizer, config.solver, tuple(sorted(conventions.to_dict().items())))
        if key not in references:
            config = config.replace(dtype="float64", device="cpu")
            references[key] = NumpyTrainer(conventions).fit(data, config)
        return references[key]

    done: list[Case] = []
    with progress_bar(len(cases) * len(frameworks), "compare", progress) as bar:
        for name in cases:
            config = case_config(base, name)
            case = Case(name, config, reference(config, Conventions()))
            for framework in frameworks:
                bar.status(f"{framework} {name}")
                json_path = out / "results" / f"{framework}-{name}.json"
                json_path.parent.mkdir(parents=True, exist_ok=True)
                parallel = [f"--workers={workers}"] if FRAMEWORKS[framework].data_parallel else []
                outcome = run_train(
                    framework,
                    pythons[framework],
                    [*data_args, *train_args(config), *parallel],
                    json_path,
                    timeout,
                )
                if outcome.ok:
                    mismatch = not_asked_for(outcome.result, config, data)
                    if mismatch:
                        outcome.invalid(mismatch)
                row = Row(outcome)
                if outcome.ok:
                    row.reference = reference(config, Conventions(**outcome.result.conventions))
                    row.parity = measure(outcome.result, row.reference, case.reference)
                case.rows[framework] = row
                bar.advance(f"{framework} {name}: {outcome.status}")
            case.pairwise = pairwise(case.results())
            done.append(case)
    return Comparison(data, base, frameworks, done, least_squares_optimum(data))
