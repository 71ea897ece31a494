"""Train a grid of models at once: seeds x attention rate x width x lr ... on a preset.

    interp.sweep("pizza-a", out="sweeps/x", attn_rate=[0, 0.5, 1], d_model=[32, 64], seed=[0, 1])

A keyword with a list is a grid axis, a scalar a fixed override (any ModelConfig or TrainConfig
field). Models that share a shape and a recipe (everything but seed, data_seed and attn_rate)
form a group trained as one stack by interp.training's Engine, the loop `interp.train` runs too:
each model follows its own run, equal within float rounding. This module keeps only the grid, the
grouping and the results table. clip_grad (a norm over a whole model) is refused. A model that
stops (test accuracy, clean circuit) is saved and dropped from the stack.

Layout of `out`:
    sweep.json                 what was asked (preset, recipe, grid, fixed overrides)
    results.csv, results.json  one row per finished model: grid values, final metrics, classification
    runs/NAME/                 each model's ordinary run directory (interp.load, --resume work on it)

Re-running with `resume=True` (`interp sweep --resume DIR`) skips finished models and continues
the others from their last snapshot.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from interp.display import HTMLRepr, tqdm
from interp import checkpoints as ck
from interp import rundir
from interp.config import ModelConfig, TrainConfig
from interp.errors import ConfigError, InterpError, RunDirError
from interp.presets import parse_value, resolve  # noqa: F401 - parse_value: the sweep's values
from interp.device import resolve_device
from interp.training import Engine, Trainer, TrainResult, load_trainer, prepare_run_dir
from interp.resources import check_memory

SPEC, TABLE_CSV, TABLE_JSON, RUNS = "sweep.json", "results.csv", "results.json", "runs"
SWEEP_FORMAT = "interp-sweep"
# What may differ inside one stacked group; everything else in the configs must match.
PER_MODEL = ("seed", "data_seed", "attn_rate")
# Most activation values (floats) one stacked group may hold at once, about 256 MB: a nanda-size
# model holds ~6M (batch 3830 x 3 positions x d_mlp 512), so ~10 of them stack; tiny ones by hundreds.
GROUP_BUDGET = 1 << 26


@dataclass(frozen=True)
class Job:
    """One model of the grid."""

    name: str  # run directory name, e.g. "attn_rate=0.5,d_model=32,seed=0"
    values: dict[str, Any]  # its grid values
    model_config: ModelConfig
    train_config: TrainConfig


@dataclass
class SweepResult(HTMLRepr):
    rows: list[dict]  # the table: one row per finished model, in grid order
    out: Path | None
    results: dict[str, TrainResult] = field(default_factory=dict)  # models trained by this call, by name
    seconds: float = 0.0


# ---- the grid ----------------------------------------------------------------------------------
def expand(preset: str | None, recipe: str | None, grid: dict[str, list], fixed: dict[str, Any]) -> list[Job]:
    """All combinations of the grid axes (in the order given), each resolved to validated configs."""
    for key, values in grid.items():
        if not values:
            raise ConfigError(f"sweep axis {key!r} has no values")
    jobs = []
    for combo in itertools.product(*grid.values()):
        values = dict(zip(grid, combo))
        mcfg, tcfg = resolve(preset, recipe, None, None, {**fixed, **values})
        name = ",".join(f"{k}={v}" for k, v in values.items()) or "model"
        jobs.append(Job(name, values, mcfg, tcfg))
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise ConfigError("sweep grid has repeated values on an axis")
    return jobs


def group_key(model_config: ModelConfig, train_config: TrainConfig) -> str:
    """Models with equal keys can be stacked: same shape (so same split sizes) and same recipe."""
    config = {**model_config.to_dict(), **train_config.to_dict()}
    return json.dumps({k: v for k, v in config.items() if k not in PER_MODEL}, sort_keys=True)


def group_size(model_config: ModelConfig, train_config: TrainConfig) -> int:
    """How many such models one stacked group takes (GROUP_BUDGET over one model's largest activation)."""
    n_train = int(train_config.train_frac * model_config.p ** 2)
    per_model = n_train * model_config.n_ctx * max(model_config.d_mlp, model_config.d_model, model_config.p)
    return max(1, GROUP_BUDGET // per_model)


# ---- the sweep -----------------------------------------------------------------------------------
def _classifier():
    try:
        from interp.classifier import classify
    except ImportError:
        return None
    return classify


def _class_columns(classification: dict) -> dict[str, Any]:
    """Table columns of a classification: its label and numeric scores (lists of ints joined)."""
    cols = {}
    for k, v in classification.items():
        if k == "label" or (isinstance(v, (int, float)) and not isinstance(v, bool)):
            cols[f"classify.{k}"] = v
        elif isinstance(v, list) and all(isinstance(x, int) for x in v):
            cols[f"classify.{k}"] = " ".join(map(str, v))
    return cols


# Config columns of every table row (besides the grid's own axes).
CONFIG_COLUMNS = ("p", "d_model", "attn_rate", "seed", "data_seed", "train_frac", "lr", "weight_decay")


def _row(job: Job, run_dir: Path | None, history: list[dict], classification: dict | None) -> dict:
    last = history[-1] if history else {}
    config = {**job.model_config.to_dict(), **job.train_config.to_dict()}
    row = {"name": job.name, **job.values, **{k: config[k] for k in CONFIG_COLUMNS if k not in job.values},
           "step": last.get("step"),
           "stopped_early": last.get("step", 0) < job.train_config.steps}
    row.update({k: last.get(k) for k in ("train_loss", "train_acc", "test_loss", "test_acc", "seconds")})
    row["run_dir"] = str(run_dir) if run_dir else None
    if classification:
        row.update(_class_columns(classification))
    return row


def _write_table(out: Path, rows: list[dict]) -> None:
    ck.atomic_write_json(out / TABLE_JSON, rows)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    ck.atomic_write_bytes(out / TABLE_CSV, buf.getvalue().encode())


def _finished_row(job: Job, run_dir: Path) -> dict | None:
    """The table row of a model whose run directory holds a final checkpoint, else None."""
    if not (run_dir / ck.FINAL).exists():
        return None
    try:
        history = json.loads((run_dir / ck.HISTORY).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    cls_file = run_dir / "classification.json"
    classification = json.loads(cls_file.read_text()) if cls_file.exists() else None
    return _row(job, run_dir, history, classification)


def _prepare_out(out: Path, spec: dict, resume: bool, overwrite: bool) -> None:
    if resume:
        if not (out / SPEC).exists():
            raise RunDirError(f"{out}: not a sweep directory (no {SPEC}) to resume")
        return
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{out}: exists and is not a directory")
    if out.exists() and rundir.user_files(out):
        if not overwrite:
            hint = "resume it with --resume, " if (out / SPEC).exists() else ""
            raise RunDirError(f"{out}: sweep directory is not empty; {hint}pick another --out, or pass --overwrite")
        for name in (SPEC, TABLE_CSV, TABLE_JSON):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / RUNS, ignore_errors=True)
    try:
        (out / RUNS).mkdir(parents=True, exist_ok=True)
        ck.atomic_write_json(out / SPEC, spec)
    except OSError as e:
        raise RunDirError(f"{out}: cannot write the sweep directory ({e.strerror or e})") from None


def read_spec(out: str | Path) -> dict:
    out = Path(out)
    try:
        spec = json.loads((out / SPEC).read_text())
    except FileNotFoundError:
        raise RunDirError(f"{out}: not a sweep directory (no {SPEC})") from None
    except json.JSONDecodeError as e:
        raise RunDirError(f"{out / SPEC}: unreadable sweep spec ({e})") from None
    if not isinstance(spec, dict) or spec.get("format") != SWEEP_FORMAT:
        raise RunDirError(f"{out / SPEC}: not an interp sweep spec")
    return spec


@rundir.holds_lock("out")
def sweep(preset: str | None = None, recipe: str | None = None, out: str | Path | None = None, *,
          sequential: bool = False, classify: bool = True, overwrite: bool = False, resume: bool = False,
          progress: bool = True, device: str | torch.device | None = None, **settings) -> SweepResult:
    """Train every combination of the list-valued `settings` (scalars are fixed overrides).

    sequential=True trains the models one after another with interp.train's Trainer (the
    reference the stacked path must equal). With `out`, each model gets a run directory under
    out/runs and the table is kept in out/results.{csv,json}; `resume=True` continues a sweep
    there (its settings come from out/sweep.json). `device`: "cpu", "cuda", "mps" (default: the best
    available). Returns the table and the models it trained.
    """
    device = resolve_device(device)
    if resume:
        if out is None:
            raise ConfigError("resume needs the sweep directory (out)")
        spec = read_spec(out)
        preset, recipe, grid = spec["preset"], spec["recipe"], spec["grid"]
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["fixed"].items()}  # JSON has no tuples
    else:
        grid = {k: list(v) for k, v in settings.items() if isinstance(v, (list, tuple, range)) and k != "betas"}
        fixed = {k: v for k, v in settings.items() if k not in grid}
    jobs = expand(preset, recipe, grid, fixed)
    if not sequential and any(j.train_config.clip_grad for j in jobs):
        raise ConfigError("clip_grad uses a norm over a whole model and cannot be stacked; "
                          "drop it or train one after another (sequential)")
    check_memory([(j.model_config, j.train_config) for j in jobs],
                 1 if sequential else max(group_size(j.model_config, j.train_config) for j in jobs), "this sweep")
    out = Path(out) if out is not None else None
    if out is not None:
        _prepare_out(out, {"format": SWEEP_FORMAT, "preset": preset, "recipe": recipe, "grid": grid,
                           "fixed": fixed}, resume, overwrite)
    classifier = _classifier() if classify else None
    t_start = time.perf_counter()

    rows: dict[str, dict] = {}
    todo: list[tuple[Job, Trainer]] = []
    for job in jobs:
        run_dir = out / RUNS / job.name if out is not None else None
        row = _finished_row(job, run_dir) if resume else None
        if row is not None:
            rows[job.name] = row
        elif resume and (run_dir / ck.RESUME).exists():
            todo.append((job, load_trainer(run_dir, device=device)))
        else:
            trainer = Trainer(job.model_config, job.train_config, preset=preset, recipe=recipe, device=device)
            if run_dir is not None:
                trainer.run_dir = prepare_run_dir(run_dir, True, job.model_config, job.train_config)
                trainer.write_run_json()
            todo.append((job, trainer))

    result = SweepResult([], out)
    job_of = {id(t): job for job, t in todo}
    total = sum(j.train_config.steps - t.step for j, t in todo)
    bar = tqdm(total=total, disable=not progress, desc="sweep", unit="model-step", dynamic_ncols=True)

    def on_finish(trainer: Trainer, r: TrainResult) -> None:
        job = job_of[id(trainer)]
        try:
            classification = classifier(r.model).to_dict() if classifier else None
        except InterpError as e:  # a model the classifier cannot judge still gets its row
            classification = {"label": f"unclassified: {e}"}
        if classification is not None and r.run_dir is not None:
            ck.atomic_write_json(r.run_dir / "classification.json", classification)
        rows[job.name] = _row(job, r.run_dir, r.history, classification)
        result.results[job.name] = r
        bar.update(job.train_config.steps - r.step)  # steps an early stop skipped
        bar.set_postfix(done=f"{len(rows)}/{len(jobs)}", refresh=False)
        if out is not None:
            _write_table(out, [rows[j.name] for j in jobs if j.name in rows])

    try:
        if sequential:
            for _, t in todo:
                start = t.step
                r = t.run(progress=False)
                bar.update(r.step - start)
                on_finish(t, r)
        else:
            groups: dict[tuple, list[Trainer]] = {}
            for _, t in todo:
                groups.setdefault((group_key(t.model_config, t.train_config), t.step), []).append(t)
            for trainers in groups.values():
                size = group_size(trainers[0].model_config, trainers[0].train_config)
                for i in range(0, len(trainers), size):
                    Engine(trainers[i:i + size]).run(on_finish, bar.update)
    finally:
        bar.close()
    result.rows = [rows[j.name] for j in jobs if j.name in rows]
    result.seconds = time.perf_counter() - t_start
    return result


def resume_sweep(out: str | Path, progress: bool = True, classify: bool = True,
                 device: str | torch.device | None = None) -> SweepResult:
    """Continue an interrupted sweep: finished models are kept, the others go on from their last snapshot."""
    return sweep(out=out, resume=True, progress=progress, classify=classify, device=device)
