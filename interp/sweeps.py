"""Train a grid of models at once: seeds x attention rate x width x lr ... on a preset.

    interp.sweep("pizza-a", out="sweeps/x", attn_rate=[0, 0.5, 1], d_model=[32, 64], seed=[0, 1])
    interp.sweep("pizza-a", out="sweeps/x", ..., backend="ray", workers=2)   # groups as Ray tasks

A keyword with a list is a grid axis, a scalar a fixed override (any ModelConfig or TrainConfig
field). Models that share a shape and a recipe (everything but seed, data_seed and attn_rate)
can be stacked and trained as one by interp.training's Engine, the loop `interp.train` runs too:
each model follows its own run, equal within float rounding. This module keeps only the grid, the
grouping and the results table. clip_grad (a norm over a whole model) is refused in a stack. A
model that stops (test accuracy, clean circuit) is saved and dropped from its stack.

Groups (`plan_groups`): each set of stackable models, in grid order, is cut into the fewest groups
of near-equal size holding at most `group_size` models. By default that size comes from the
device and the model: a group may take 1/GROUP_SHARE of the device's total memory (a CUDA device's
own, else the machine's), each model counted at interp.resources' estimate of what training it
holds (its data, weights and optimiser state, full-batch activations). On a 24 GiB machine that
is ~760 tiny models (p 23, d_model 32), 32 pizza-a or 9 nanda-size ones per group. The plan uses
the total, not what is free now, so it is the same on every run and for both backends.

Backends: "inprocess" (the default) trains the groups one after another in this process; "ray"
sends each group as a Ray task (interp.distributed) to a local Ray started with `workers` CPUs, or
to the cluster at `address` (its workers need interp installed, and the sweep directory must be on
a filesystem they share). Both run `train_group` on the same plan; a sweep started with one
backend can be resumed with the other. Weights are bit-identical across backends at equal torch
thread counts: `threads` sets it per group; its default is the process's own count in-process and
1 per Ray task (Ray runs each task on one CPU with OMP_NUM_THREADS=1), so pass threads=1
(`--threads 1`) in-process to match a Ray sweep bit for bit. A larger `threads` makes each Ray task
reserve that many CPUs. (On this 2-core CPU the weights also came out bit-identical at 1 and 2
threads and at group sizes 2 and 4, pizza-a, 20 steps; torch does not promise that in general.)

Layout of `out`:
    sweep.json                 what was asked (preset, recipe, grid, fixed overrides)
    results.csv, results.json  one row per finished model: grid values, final metrics, classification
    runs/NAME/                 each model's ordinary run directory (interp.load, --resume work on it)

Re-running with `resume=True` (`interp sweep --resume DIR`) skips finished models and continues
the others from their last snapshot. Only the driver (the process that called `sweep`) writes the
table, rebuilding it from the run directories as each model (in-process) or group (Ray) ends.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import shutil
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

import torch

from interp.display import HTMLRepr, tqdm
from interp import checkpoints as ck
from interp import distributed, rundir
from interp.config import ModelConfig, TrainConfig
from interp.errors import ConfigError, InterpError, RunDirError
from interp.presets import resolve
from interp.device import resolve_device
from interp.training import Engine, Trainer, TrainResult, load_trainer, prepare_run_dir
from interp.resources import check_memory, device_memory, estimate_training

SPEC, TABLE_CSV, TABLE_JSON, RUNS = "sweep.json", "results.csv", "results.json", "runs"
SWEEP_FORMAT = "interp-sweep"
# What may differ inside one stacked group; everything else in the configs must match.
PER_MODEL = ("seed", "data_seed", "attn_rate")
# A stacked group may take 1/GROUP_SHARE of the device's total memory: the rest is left to the
# process, to other groups running at once (Ray workers on one machine) and to the estimate's error.
GROUP_SHARE = 8
BACKENDS = ("inprocess", "ray")
CLASSIFICATION = "classification.json"


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


def group_size(model_config: ModelConfig, train_config: TrainConfig, device: str | torch.device | None = None,
               budget: int | None = None) -> int:
    """How many such models one stacked group takes: `budget` bytes (default 1/GROUP_SHARE of the
    device's total memory) over the memory training one of them needs (interp.resources' estimate)."""
    budget = device_memory(device) // GROUP_SHARE if budget is None else budget
    return max(1, budget // estimate_training(model_config, train_config).total)


def plan_groups(jobs: list[Job], device: str | torch.device | None = None, max_size: int | None = None) -> list[list[Job]]:
    """The sweep's units of work: the jobs of each group_key, in grid order, cut into the fewest
    groups of at most `max_size` models (default: group_size on `device`), of near-equal sizes."""
    same: dict[str, list[Job]] = {}
    for job in jobs:
        same.setdefault(group_key(job.model_config, job.train_config), []).append(job)
    groups = []
    for js in same.values():
        size = max_size or group_size(js[0].model_config, js[0].train_config, device)
        n = -(-len(js) // size)
        groups += [js[i * len(js) // n:(i + 1) * len(js) // n] for i in range(n)]
    return groups


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


def _finished(run_dir: Path) -> list[dict] | None:
    """The history of a model whose run directory holds a final checkpoint, else None."""
    if not (run_dir / ck.FINAL).exists():
        return None
    try:
        return json.loads((run_dir / ck.HISTORY).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _finished_row(job: Job, run_dir: Path, classify: bool = False) -> dict | None:
    """The table row of a finished model, from its run directory (None if it is not finished, or
    with `classify` not yet classified)."""
    history = _finished(run_dir)
    cls_file = run_dir / CLASSIFICATION
    if history is None or (classify and not cls_file.exists()):
        return None
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


# ---- one group: the unit of work of both backends -------------------------------------------------
def _classification(classifier, model) -> dict | None:
    if classifier is None:
        return None
    try:
        return classifier(model).to_dict()
    except InterpError as e:  # a model the classifier cannot judge still gets its row
        return {"label": f"unclassified: {e}"}


def _complete(run_dir: Path, history: list[dict], classifier) -> None:
    """What a finished model may lack after a cut between the last writes of its run: run.json's
    stop_reason (written after final.safetensors) and its classification."""
    info = json.loads((run_dir / ck.RUN_JSON).read_text())
    if "stop_reason" not in info and history and "stop_reason" in history[-1]:
        ck.atomic_write_json(run_dir / ck.RUN_JSON, dict(info, stop_reason=history[-1]["stop_reason"]))
    if classifier is not None and not (run_dir / CLASSIFICATION).exists():
        from interp.formats import load

        ck.atomic_write_json(run_dir / CLASSIFICATION, _classification(classifier, load(run_dir)))


def train_group(out: Path | None, preset: str | None, recipe: str | None, jobs: list[Job], *, classify: bool = True,
                device: str | torch.device | None = None, threads: int | None = None,
                on_step: Callable[[int], None] | None = None,
                on_finish: Callable[[Job, TrainResult, dict | None], None] | None = None) -> dict[str, TrainResult]:
    """Train one group of the plan as one stack: what each backend runs (a Ray task runs exactly this).

    Safe to run again after a cut anywhere (a killed worker's retry, a resumed sweep): a model whose
    run directory holds final.safetensors is skipped (completed if the cut came before its last
    writes), the others continue from their resume.safetensors (models at different steps in
    separate stacks) or start afresh. Writes only its models' run directories, each file atomically,
    never the sweep's table. `threads`: torch threads while it trains (None: as they are).
    `on_step(n)`: n more model-steps done (steps done before count too); `on_finish(job, result,
    classification)` as each model ends. Returns the models it trained, by name.
    """
    device = resolve_device(device)
    classifier = _classifier() if classify else None
    on_step = on_step or (lambda n: None)
    check_memory([(j.model_config, j.train_config) for j in jobs], len(jobs), "this sweep group")
    job_of, stacks, results = {}, {}, {}
    for job in jobs:
        run_dir = out / RUNS / job.name if out is not None else None
        history = _finished(run_dir) if run_dir is not None else None
        if history is not None:
            _complete(run_dir, history, classifier)
            on_step(job.train_config.steps)
            continue
        if run_dir is not None and (run_dir / ck.RESUME).exists():
            trainer = load_trainer(run_dir, device=device)
        else:
            trainer = Trainer(job.model_config, job.train_config, preset=preset, recipe=recipe, device=device)
            if run_dir is not None:
                trainer.run_dir = prepare_run_dir(run_dir, True, job.model_config, job.train_config)
                trainer.write_run_json()
        on_step(trainer.step)
        job_of[id(trainer)] = job
        stacks.setdefault(trainer.step, []).append(trainer)

    def finished(trainer: Trainer, r: TrainResult) -> None:
        job = job_of[id(trainer)]
        classification = _classification(classifier, r.model)
        if classification is not None and r.run_dir is not None:
            ck.atomic_write_json(r.run_dir / CLASSIFICATION, classification)
        results[job.name] = r
        on_step(job.train_config.steps - r.step)  # steps an early stop skipped
        if on_finish is not None:
            on_finish(job, r, classification)

    threads_before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)  # Ray workers start with 1 (OMP_NUM_THREADS=1); equal counts, equal bits
    try:
        for trainers in stacks.values():
            Engine(trainers).run(finished, on_step)
    finally:
        torch.set_num_threads(threads_before)
    return results


def _group_task(*args, **kwargs) -> list[str]:
    """train_group as a Ray task: the models stay on disk, the driver gets their names."""
    return list(train_group(*args, **kwargs))


# ---- the sweep -------------------------------------------------------------------------------------
def _positive(name: str, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _grid_in_order(spec: dict, out: Path) -> dict[str, list]:
    """The spec's grid with its axes in the order asked (the order of the names in runs/): sweep.json
    keeps it in "axes", since its keys are written sorted. Specs from before "axes" existed: the
    order of an existing run directory's name."""
    grid = spec["grid"]
    axes = spec.get("axes")
    if axes is None:
        names = sorted(d.name for d in (out / RUNS).glob("*=*"))
        axes = [part.split("=", 1)[0] for part in names[0].split(",")] if names else list(grid)
    if sorted(axes) != sorted(grid):
        raise RunDirError(f"{out / SPEC}: its axes {axes} are not its grid's ({', '.join(grid)})")
    return {k: grid[k] for k in axes}


@rundir.holds_lock("out")
def sweep(preset: str | None = None, recipe: str | None = None, out: str | Path | None = None, *,
          sequential: bool = False, classify: bool = True, overwrite: bool = False, resume: bool = False,
          progress: bool = True, device: str | torch.device | None = None, backend: str = "inprocess",
          address: str | None = None, workers: int = 2, threads: int | None = None, group_size: int | None = None,
          **settings) -> SweepResult:
    """Train every combination of the list-valued `settings` (scalars are fixed overrides).

    With `out`, each model gets a run directory under out/runs and the table is kept in
    out/results.{csv,json}; `resume=True` continues a sweep there (its settings come from
    out/sweep.json). `device`: "cpu", "cuda", "mps" (default: the best available).
    `group_size`: most models per stacked group (default: from the device's memory, see the module
    doc); sequential=True is group_size 1, models trained one after another (the reference the
    stacked path must equal). `backend`: "inprocess" or "ray" (`address` of a Ray cluster, else a
    local Ray with `workers` CPUs; needs `out`). `threads`: torch threads per group (module doc).
    Returns the table, and the models this call trained in this process (in-process backend; a Ray
    sweep leaves them in their run directories: interp.load(row["run_dir"])).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend != "ray" and address is not None:
        raise ConfigError("address is the Ray cluster's: it needs backend='ray' (--backend ray)")
    for name, value in (("workers", workers), ("threads", threads), ("group_size", group_size)):
        _positive(name, value)
    remote = backend == "ray" and address is not None
    if backend == "ray":
        if out is None:
            raise ConfigError("the Ray backend writes each model into the sweep directory: give out (--out)")
        distributed.require_ray()
    # On a cluster the workers pick the device; groups are then sized for this machine's memory.
    device = resolve_device(device) if not remote else device
    if resume:
        if out is None:
            raise ConfigError("resume needs the sweep directory (out)")
        spec = read_spec(out)
        preset, recipe, grid = spec["preset"], spec["recipe"], _grid_in_order(spec, Path(out))
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["fixed"].items()}  # JSON has no tuples
        group_size = group_size or spec.get("group_size")
    else:
        grid = {k: list(v) for k, v in settings.items() if isinstance(v, (list, tuple, range)) and k != "betas"}
        fixed = {k: v for k, v in settings.items() if k not in grid}
    group_size = 1 if sequential else group_size
    jobs = expand(preset, recipe, grid, fixed)
    groups = plan_groups(jobs, device if not remote else "cpu", group_size)
    if any(len(g) > 1 and g[0].train_config.clip_grad for g in groups):
        raise ConfigError("clip_grad uses a norm over a whole model and cannot be stacked; "
                          "drop it or train one after another (sequential)")
    if not remote:  # the groups that may run at once here: one in-process, one per local Ray worker
        size = {id(g): sum(estimate_training(j.model_config, j.train_config).total for j in g) for g in groups}
        at_once = sorted(groups, key=lambda g: -size[id(g)])[:workers if backend == "ray" else 1]
        runs = [(j.model_config, j.train_config) for g in at_once for j in g]
        check_memory(runs, len(runs), "this sweep")
    out = Path(out) if out is not None else None
    if out is not None:
        spec = {"format": SWEEP_FORMAT, "preset": preset, "recipe": recipe, "grid": grid, "axes": list(grid),
                "fixed": fixed}
        _prepare_out(out, dict(spec, group_size=group_size) if group_size else spec, resume, overwrite)
    need_class = classify and _classifier() is not None
    t_start = time.perf_counter()

    result = SweepResult([], out)
    rows: dict[str, dict] = {}

    def write_table() -> None:
        if out is not None:
            _write_table(out, [rows[j.name] for j in jobs if j.name in rows])

    def collect(group: list[Job]) -> None:  # the driver's table, from the run directories
        for job in group:
            row = _finished_row(job, out / RUNS / job.name, need_class)
            if row is not None:
                rows[job.name] = row
        write_table()

    if resume:
        collect(jobs)
    todo = [g for g in groups if any(j.name not in rows for j in g)]
    common = dict(classify=classify, device=device, threads=threads)
    if backend == "ray":
        # One GPU per task on CUDA: Ray sets each worker's CUDA_VISIBLE_DEVICES, so there "cuda" is its GPU.
        gpus = 1 if device is not None and torch.device(device).type == "cuda" else 0
        common.update(threads=threads or 1, device="cuda" if gpus else device)
        tasks = [partial(_group_task, out, preset, recipe, g, **common) for g in todo]
        distributed.run_tasks(tasks, address=address, num_workers=workers, cpus_per_task=threads or 1,
                              num_gpus=gpus, on_result=lambda i, names: collect(todo[i]), progress=progress)
    else:
        bar = tqdm(total=sum(j.train_config.steps for g in todo for j in g), disable=not progress, desc="sweep",
                   unit="model-step", dynamic_ncols=True)

        def finished(job: Job, r: TrainResult, classification: dict | None) -> None:
            rows[job.name] = _finished_row(job, r.run_dir) if r.run_dir else _row(job, None, r.history, classification)
            bar.set_postfix(done=f"{len(rows)}/{len(jobs)}", refresh=False)
            write_table()

        try:
            for g in todo:
                result.results.update(train_group(out, preset, recipe, g, **common, on_step=bar.update,
                                                  on_finish=finished))
                if out is not None:
                    collect(g)  # models the group only completed (classified) after a cut
        finally:
            bar.close()
    result.rows = [rows[j.name] for j in jobs if j.name in rows]
    result.seconds = time.perf_counter() - t_start
    return result


def resume_sweep(out: str | Path, progress: bool = True, classify: bool = True,
                 device: str | torch.device | None = None, **options) -> SweepResult:
    """Continue an interrupted sweep: finished models are kept, the others go on from their last
    snapshot. `options`: backend, address, workers, threads, group_size (as for `sweep`)."""
    unknown = set(options) - {"backend", "address", "workers", "threads", "group_size"}
    if unknown:
        raise ConfigError(f"resume_sweep: unknown option(s) {', '.join(sorted(unknown))}")
    return sweep(out=out, resume=True, progress=progress, classify=classify, device=device, **options)
