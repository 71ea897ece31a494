"""Full-batch training on the model's task (interp.tasks; (a + b) mod p by default), with logged history,
snapshots, stops and resume.

One engine (`Engine`) trains a stack of n >= 1 models; a single run (`Trainer.run`, `train`) is a
stack of one, a sweep (interp.sweeps) stacks the models that share a shape and a recipe.
A run stops at its step cap, at `stop_at_test_acc`, or, with `stop_when_clean`, once its circuit
is clean (interp.stopping); the reason is kept in the last history row and in run.json.

A run directory holds:
    run.json                      model + training config, preset and recipe names, stop_reason
    history.json                  [{step, train_loss, train_acc, test_loss, test_acc, seconds}]
                                  (+ key_freqs with stop_when_clean, stop_reason in the last row)
    checkpoints/step_XXXXXX.safetensors   weights every `checkpoint_every` steps (initial included)
    final.safetensors             weights at the last step
    resume.safetensors            weights + AdamW + gradient-filter state at the last snapshot

`step` counts optimiser updates: the row and snapshot of step s describe the model after s updates.
Resuming restarts from resume.safetensors and ends with the same weights as an uninterrupted run:
training is full batch and draws no random numbers after initialisation.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch.func import functional_call, stack_module_state, vmap

from interp.display import HTMLRepr, tqdm
from interp import batched
from interp import checkpoints as ck
from interp import rundir
from interp.config import ModelConfig, TrainConfig
from interp.data import Dataset, make_dataset
from interp.device import resolve_device
from interp.errors import CheckpointError, ConfigError, RunDirError
from interp.gradfilters import GradFilter, make_filter
from interp.model import Transformer, loss_fn  # loss_fn re-exported: interp.training.loss_fn stays importable
from interp.optim import AdamW
from interp.resources import check_memory, state_floats
from interp.safeio import MAX_HISTORY_BYTES, read_json_file
from interp.stopping import clean_reason


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of rows [n, d_vocab_out] whose argmax is the label [n]: a 0-dim tensor."""
    return (logits.argmax(-1) == labels).float().mean()


@torch.no_grad()
def evaluate(model: Transformer, tokens: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(loss, accuracy) on the given tokens [n, n_ctx], labels [n]."""
    logits = model.last_logits(tokens)
    return loss_fn(logits, labels).item(), accuracy(logits, labels).item()


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate of update `step + 1`: linear warm-up over `warmup_steps` updates, then constant.
    cfg.warmup "zhong" lags one update behind "nanda" (its first update has lr 0; config.WARMUPS)."""
    done = step if cfg.warmup == "zhong" else step + 1
    return cfg.lr * min(1.0, done / cfg.warmup_steps) if cfg.warmup_steps else cfg.lr


def make_optimizer(params: dict[str, torch.nn.Parameter], cfg: TrainConfig) -> AdamW:
    return AdamW(list(params.values()), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas)


def apply_update(loss: torch.Tensor, params: dict[str, torch.nn.Parameter], optimizer: AdamW,
                 grad_filter: GradFilter | None, cfg: TrainConfig, step: int) -> None:
    """Update number `step + 1` from the training loss: backward, gradient filter, clipping, warm-up lr, AdamW.

    interp.sweep calls it on stacked parameters [n_models, ...]: everything here is element-wise
    except clip_grad (a norm over the whole model), which the sweep refuses.
    """
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_filter:
        grad_filter.filter()
    if cfg.clip_grad:
        torch.nn.utils.clip_grad_norm_(list(params.values()), cfg.clip_grad)
    for g in optimizer.param_groups:
        g["lr"] = lr_at(cfg, step)
    optimizer.step()


@dataclass
class TrainResult(HTMLRepr):
    model: Transformer
    history: list[dict]
    run_dir: Path | None
    step: int
    stopped_early: bool
    seconds: float
    stop_reason: str = ""  # why training stopped (also in the last history row and in run.json)

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}


@dataclass
class Trainer:
    """One model's training run: its configs, weights, optimiser and bookkeeping (history, run
    directory, resume state). `run()` trains it from `step` to cfg.steps or a stop, with the Engine."""

    model_config: ModelConfig
    train_config: TrainConfig
    run_dir: Path | None = None
    preset: str | None = None
    recipe: str | None = None
    history: list[dict] = field(default_factory=list)
    step: int = 0
    seconds: float = 0.0
    run_id: str | None = field(default_factory=rundir.new_run_id)  # in run.json and every resume state
    device: torch.device | str | None = "cpu"
    stop_reason: str = ""

    def __post_init__(self):
        self.device = torch.device(self.device or "cpu")
        self.model = Transformer(self.model_config, seed=self.train_config.seed).to(self.device)  # CPU init: same on every device
        data = make_dataset(self.model_config, self.train_config.train_frac, self.train_config.data_seed)
        self.data: Dataset = Dataset(**{k: v.to(self.device) for k, v in vars(data).items()})
        self.params = {n: p for n, p in self.model.named_parameters() if p.requires_grad}
        self.optimizer = make_optimizer(self.params, self.train_config)
        self.grad_filter = make_filter(self.params, self.train_config)

    # ---- persistence -------------------------------------------------------------------------
    def resume_state(self) -> dict[str, torch.Tensor]:
        """Everything training state holds besides the config: weights, AdamW moments, filter state."""
        state = {f"model.{k}": v for k, v in self.model.state_dict().items() if not k.endswith((".mask", ".IGNORE"))}
        for name, p in self.params.items():
            for key, val in self.optimizer.state.get(p, {}).items():
                state[f"optim.{name}.{key}"] = val if torch.is_tensor(val) else torch.tensor(val)
        if self.grad_filter:
            state.update(self.grad_filter.tensors())
        return state

    def load_resume_state(self, tensors: dict[str, torch.Tensor], source: str) -> None:
        model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model = ck.model_from_state(self.model_config, model_state, source).to(self.device)
        self.model.train()
        self.params = {n: p for n, p in self.model.named_parameters() if p.requires_grad}
        self.optimizer = make_optimizer(self.params, self.train_config)
        for name, p in self.params.items():
            st = {k.split(".")[-1]: v for k, v in tensors.items() if k.startswith(f"optim.{name}.") and k.count(".") == name.count(".") + 2}
            if st:  # AdamW keeps its step counter on the CPU unless capturable
                self.optimizer.state[p] = {k: v if k == "step" else v.to(self.device) for k, v in st.items()}
        self.grad_filter = make_filter(self.params, self.train_config)
        if self.grad_filter:
            self.grad_filter.load(tensors, self.device)

    def save(self, snapshot: bool) -> None:
        if self.run_dir is None:
            return
        metrics = self.history[-1] if self.history and self.history[-1]["step"] == self.step else {}
        if snapshot:
            ck.save_checkpoint(self.run_dir / ck.SNAPSHOTS / f"step_{self.step:06d}.safetensors", self.model,
                               self.train_config, self.step, metrics)
        ck.atomic_write_json(self.run_dir / ck.HISTORY, self.history)
        ck.save_tensors(self.run_dir / ck.RESUME, self.resume_state(),
                        {"step": self.step, "seconds": self.seconds, "run_id": self.run_id,
                         "model_config": self.model_config.to_dict(),
                         "train_config": self.train_config.to_dict()})

    def write_run_json(self) -> None:
        ck.atomic_write_json(self.run_dir / ck.RUN_JSON, {
            "model_config": self.model_config.to_dict(), "train_config": self.train_config.to_dict(),
            "preset": self.preset, "recipe": self.recipe, "format": ck.FORMAT, "run_id": self.run_id,
        })

    # ---- bookkeeping the Engine calls ----------------------------------------------------------
    def record(self, train_loss: float, train_acc: float, test_loss: float, test_acc: float) -> dict:
        row = {"step": self.step, "train_loss": train_loss, "train_acc": train_acc,
               "test_loss": test_loss, "test_acc": test_acc, "seconds": round(self.seconds, 3)}
        self.history.append(row)
        return row

    def update(self, loss: torch.Tensor) -> None:
        """One optimiser update of this model alone (the Engine's step for a stack of one)."""
        apply_update(loss, self.params, self.optimizer, self.grad_filter, self.train_config, self.step)
        self.step += 1

    def finish(self, reason: str) -> TrainResult:
        """Save the end of the run: why it stopped (last history row, run.json), a last snapshot
        (and resume point) and final.safetensors."""
        self.model.eval()
        self.stop_reason = reason
        if self.history and self.history[-1]["step"] == self.step:
            self.history[-1]["stop_reason"] = reason
        if self.run_dir is not None:
            self.save(snapshot=True)
            ck.save_checkpoint(self.run_dir / ck.FINAL, self.model, self.train_config, self.step, self.history[-1])
            info = json.loads((self.run_dir / ck.RUN_JSON).read_text())
            ck.atomic_write_json(self.run_dir / ck.RUN_JSON, dict(info, stop_reason=reason))
        return TrainResult(self.model, self.history, self.run_dir, self.step, self.step < self.train_config.steps,
                           self.seconds, reason)

    def run(self, progress: bool = True) -> TrainResult:
        bar = tqdm(total=self.train_config.steps, initial=self.step, disable=not progress, desc="train", unit="step",
                   dynamic_ncols=True, leave=True)
        results = []

        def on_log(rows: list[dict]) -> None:
            bar.set_postfix(train_acc=f"{rows[0]['train_acc']:.3f}", test_acc=f"{rows[0]['test_acc']:.3f}", refresh=False)

        try:
            Engine([self]).run(lambda t, r: results.append(r), bar.update, on_log)
        finally:
            bar.close()
        return results[0]

    def train_on(self, steps: int, progress: bool = False) -> TrainResult:
        """After a stop: train on to `steps` from this state (weights, AdamW moments, filter state) with
        no clean stop, to see what the stopped model would have become."""
        self.train_config = self.train_config.replace(steps=steps, stop_when_clean=False)
        self.history[-1].pop("stop_reason", None)
        return self.run(progress=progress)


class Engine:
    """The training loop, once: n >= 1 models of one shape and recipe trained in lockstep.

    A stack of one trains its Trainer's own model, parameters and optimiser: a plain PyTorch step.
    More are stacked [n_models, ...] (`stack_module_state`), data too (different splits of the same
    size), under one AdamW and one gradient filter: both are element-wise and the loss is the sum of
    per-model losses, so each model follows its own run (clip_grad, a norm over a whole model, is
    refused by the sweep). Every Trainer keeps its own bookkeeping and gets its slice of the state
    when saved; a model that stops (step cap, test accuracy, clean circuit: `interp.stopping`) is
    saved and dropped from the stack.

    The forward (training and test logits): the model's own forward, last position only (vmapped over
    a stack), by default; with TrainConfig.forward "tables", one-layer models use `batched.pair_logits`
    (keys and values from token tables, about half the FLOPs, no hooks; the same stacked code for a
    stack of one and of n, so a solo run equals its model in a sweep bit for bit). Both compute the
    same function; their float rounding differs, so a seed's trajectory differs between them.
    """

    def __init__(self, trainers: list[Trainer]):
        self.trainers = trainers
        self.tc = trainers[0].train_config
        self.step = trainers[0].step
        self.device = trainers[0].device
        self.solo = len(trainers) == 1
        data = [t.data for t in trainers]
        self.data = {k: torch.stack([getattr(d, k) for d in data])  # [n_models, ...]
                     for k in ("train_tokens", "train_labels", "test_tokens", "test_labels")}
        self.cfg = trainers[0].model_config  # the shape; attention rates per model:
        self.rates = torch.tensor([t.model_config.attn_rate for t in trainers], device=self.device)
        self.tables = self.tc.forward == "tables" and batched.supports_tables(self.cfg)
        if self.solo:
            return
        # The template decides code paths only: mixing attention as soon as one model has alpha != 1
        # (alpha = 1 in a mixing group computes 1 * softmax + 0 * J: the same numbers).
        mixing = [t.model_config for t in trainers if t.model_config.attn_rate != 1.0]
        self.base = Transformer((mixing or [trainers[0].model_config])[0], seed=None).to(self.device)
        params, self.buffers = stack_module_state([t.model for t in trainers])
        self.params = dict(params)
        self.trainable = {n: p for n, p in self.params.items() if p.requires_grad}
        self.optimizer = make_optimizer(self.trainable, self.tc)
        self.grad_filter = make_filter(self.trainable, self.tc)
        self._stack_state()
        self._vlogits = vmap(self._logits)

    # ---- the stack's forward pass and per-model numbers ---------------------------------------
    def _logits(self, params, buffers, tokens):  # one model: tokens [n, n_ctx] -> [n, d_vocab_out]
        return functional_call(self.base, (params, buffers), (tokens,), {"last_only": True})[:, -1]  # = last_logits

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [n_models, batch, n_ctx] -> last-position logits [n_models, batch, d_vocab_out]."""
        if self.tables:
            params = {n: p.unsqueeze(0) for n, p in self.trainers[0].model.named_parameters()} if self.solo else self.params
            return batched.pair_logits(self.cfg, params, tokens, self.rates)
        if self.solo:
            return self.trainers[0].model.last_logits(tokens[0]).unsqueeze(0)
        return self._vlogits(self.params, self.buffers, tokens)

    def per_model(self, fn, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """fn(logits [batch, d_vocab_out], labels [batch]) -> 0-dim, for each model: [n_models]."""
        return fn(logits[0], labels[0]).unsqueeze(0) if self.solo else vmap(fn)(logits, labels)

    def weights(self, j: int) -> dict[str, torch.Tensor]:
        """Model j's parameters by name (views, no copy)."""
        if self.solo:
            return dict(self.trainers[0].model.named_parameters())
        return {n: p[j] for n, p in self.params.items()}

    def model_now(self, j: int) -> Transformer:
        """Model j with its weights now: the model itself when solo, else a copy (a stack's models hold
        their weights in the stacked parameters)."""
        if self.solo:
            return self.trainers[0].model
        model = copy.deepcopy(self.trainers[j].model)
        with torch.no_grad():
            model.load_state_dict(self.weights(j), strict=False)
        return model

    # ---- stacking state ------------------------------------------------------------------------
    def _stack_state(self) -> None:
        """Optimiser and filter state of resumed trainers (all at the same step), stacked."""
        for name, p in self.trainable.items():
            states = [t.optimizer.state.get(t.params[name]) for t in self.trainers]
            if all(states):
                self.optimizer.state[p] = {k: states[0][k].clone() if k == "step" else torch.stack([s[k] for s in states])
                                           for k in states[0]}
        if self.grad_filter:
            self.grad_filter.stack([t.grad_filter for t in self.trainers])

    @torch.no_grad()
    def _scatter(self, j: int, seconds: float) -> Trainer:
        """Trainer j with model j's weights, AdamW moments and filter state, ready to save."""
        t = self.trainers[j]
        t.step, t.seconds = self.step, seconds
        if self.solo:
            return t
        for n, p in t.model.named_parameters():
            p.copy_(self.params[n][j])
        for n, p in t.params.items():
            st = self.optimizer.state.get(self.trainable[n])
            if st:
                t.optimizer.state[p] = {k: v.clone() if k == "step" else v[j].clone() for k, v in st.items()}
        if self.grad_filter:
            t.grad_filter.model(self.grad_filter, j)
        return t

    def _keep(self, keep: list[int]) -> None:
        """Drop the models not in `keep` from the stack (state, data and trainers)."""
        idx = torch.tensor(keep, device=self.device)
        self.data = {k: v[idx] for k, v in self.data.items()}
        self.rates = self.rates[idx]
        self.trainers = [self.trainers[j] for j in keep]
        if self.solo:
            return
        old = self.trainable
        self.params = {n: p.detach()[idx].requires_grad_(p.requires_grad) for n, p in self.params.items()}
        self.buffers = {n: b[idx] for n, b in self.buffers.items()}
        self.trainable = {n: p for n, p in self.params.items() if p.requires_grad}
        state = self.optimizer.state
        self.optimizer = make_optimizer(self.trainable, self.tc)
        for n, p in self.trainable.items():
            if old[n] in state:
                self.optimizer.state[p] = {k: v if k == "step" else v[idx] for k, v in state[old[n]].items()}
        if self.grad_filter:
            self.grad_filter = self.grad_filter.select(self.trainable, idx)

    # ---- the loop ------------------------------------------------------------------------------
    def update(self, losses: torch.Tensor) -> None:
        """Update number step + 1 of every model in the stack from its loss (losses [n_models])."""
        if self.solo:
            self.trainers[0].update(losses[0])
        else:
            apply_update(losses.sum(), self.trainable, self.optimizer, self.grad_filter, self.tc, self.step)
        self.step += 1

    def log(self, logits: torch.Tensor, losses: torch.Tensor, seconds: float, done: bool) -> dict[int, str]:
        """History rows for every model from the train logits [n_models, n_train, d_vocab_out] and a test
        pass; returns {model index: reason} for those whose stop (test accuracy, clean circuit) is met."""
        tc, d = self.tc, self.data
        train_acc = self.per_model(accuracy, logits.detach(), d["train_labels"]).tolist()
        with torch.no_grad():
            test_logits = self.logits(d["test_tokens"])
            test_loss = self.per_model(loss_fn, test_logits, d["test_labels"]).tolist()
            test_acc = self.per_model(accuracy, test_logits, d["test_labels"]).tolist()
        stops = {}
        for j, (t, loss) in enumerate(zip(self.trainers, losses.tolist())):
            t.step, t.seconds = self.step, seconds
            row = t.record(loss, train_acc[j], test_loss[j], test_acc[j])
            if tc.stop_when_clean:
                reason = clean_reason(t.history, self.weights(j), t.model_config.p, t.model_config.task,
                                      self.model_now(j) if tc.stop_gs_change is not None else None,
                                      tc.stop_weight_change, tc.stop_gs_change)
                if reason and not done:
                    stops[j] = reason
            if not done and tc.stop_at_test_acc is not None and row["test_acc"] >= tc.stop_at_test_acc:
                stops.setdefault(j, f"test accuracy {row['test_acc']:.4f} >= stop_at_test_acc {tc.stop_at_test_acc:g}")
        return stops

    def run(self, on_finish: Callable[[Trainer, TrainResult], None], on_step: Callable[[int], None],
            on_log: Callable[[list[dict]], None] | None = None) -> None:
        """Train every model to its stop; `on_finish` gets each model as it ends, `on_step` the number
        of models each update advanced, `on_log` the new history rows at each evaluation."""
        tc, d = self.tc, self.data
        t0 = time.perf_counter() - self.trainers[0].seconds
        for t in self.trainers:
            t.model.train()
        while self.trainers:
            logits = self.logits(d["train_tokens"])  # [n_models, n_train, d_vocab_out]
            losses = self.per_model(loss_fn, logits, d["train_labels"])  # [n_models]
            done = self.step >= tc.steps
            stops = {j: f"step cap: steps={tc.steps} reached" for j in range(len(self.trainers))} if done else {}
            if self.step % tc.log_every == 0 or done:
                stops.update(self.log(logits, losses, time.perf_counter() - t0, done))
                if on_log:
                    on_log([t.history[-1] for t in self.trainers])
            if stops:
                seconds = time.perf_counter() - t0
                for j in sorted(stops):
                    t = self._scatter(j, seconds)
                    on_finish(t, t.finish(stops[j]))
            if len(stops) == len(self.trainers):
                break
            if self.step % tc.checkpoint_every == 0:
                seconds = time.perf_counter() - t0
                for j in range(len(self.trainers)):
                    if j not in stops:
                        self._scatter(j, seconds).save(snapshot=True)
            # Stopped models take this update too (their results are saved already), then leave.
            self.update(losses)
            on_step(len(self.trainers))
            if stops:
                self._keep([j for j in range(len(self.trainers)) if j not in stops])
            d = self.data


def prepare_run_dir(run_dir: str | Path, overwrite: bool, model_config: ModelConfig, train_config: TrainConfig) -> Path:
    """Create the run directory, or refuse with a clear message; check it is writable and has room."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: exists and is not a directory")
    replace = run_dir.exists() and bool(rundir.user_files(run_dir))
    if replace and not overwrite:
        hint = "resume it with --resume" if (run_dir / ck.RESUME).exists() else "pick another --out"
        raise RunDirError(f"{run_dir}: run directory is not empty; {hint}, or pass --overwrite")
    fresh = [d for d in (run_dir / ck.SNAPSHOTS, run_dir) if not d.exists()]
    try:
        (run_dir / ck.SNAPSHOTS).mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise RunDirError(f"{run_dir}: cannot write the run directory ({e.strerror or e})") from None
    try:
        check_disk_space(run_dir, model_config, train_config)
    except RunDirError:
        for d in fresh:  # what this call created: a refused run leaves nothing that blocks running it again
            d.rmdir()
        raise
    if replace:  # only once the new run is known to start: a refused --overwrite keeps the old run
        for name in (ck.RUN_JSON, ck.HISTORY, ck.FINAL, ck.RESUME):
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / ck.SNAPSHOTS, ignore_errors=True)
        (run_dir / ck.SNAPSHOTS).mkdir()
    return run_dir


def check_disk_space(run_dir: Path, model_config: ModelConfig, train_config: TrainConfig, start_step: int = 0) -> None:
    """Refuse up front when the snapshots this run will write cannot fit on the disk."""
    n_params = sum(p.numel() for p in Transformer(model_config, seed=None).parameters())
    n_snap = (train_config.steps - start_step) // train_config.checkpoint_every + 2
    resume = 3 + state_floats(train_config)  # weights, AdamW moments, filter state (MA: w x params)
    need = n_params * 4 * (n_snap + 1 + resume + 2 + state_floats(train_config)) + (1 << 20)  # snapshots, final, resume, temp copies
    free = shutil.disk_usage(run_dir).free
    if need > free:
        raise RunDirError(f"{run_dir}: needs about {need / 2**20:.1f} MiB for checkpoints, only {free / 2**20:.1f} MiB free")


@rundir.holds_lock("out")
def train(preset: str | None = None, recipe: str | None = None, out: str | Path | None = None, *,
          model_config: ModelConfig | None = None, train_config: TrainConfig | None = None,
          overwrite: bool = False, progress: bool = True, device: str | torch.device | None = None,
          **overrides) -> TrainResult:
    """Train a model. Start from a preset (and recipe) and/or explicit configs; keyword overrides
    set any ModelConfig or TrainConfig field by name, e.g. `train("nanda", steps=500, attn_rate=0.5)`.
    With `out`, the run is saved there and can be resumed with `resume(out)`. `device`: "cpu",
    "cuda", "mps" (default: the best available).
    """
    from interp.presets import resolve

    mcfg, tcfg = resolve(preset, recipe, model_config, train_config, overrides)
    check_memory([(mcfg, tcfg)])  # before the data and the model are built
    trainer = Trainer(mcfg, tcfg, preset=preset, recipe=recipe, device=resolve_device(device))
    if out is not None:
        trainer.run_dir = prepare_run_dir(out, overwrite, mcfg, tcfg)
        trainer.write_run_json()
    return trainer.run(progress=progress)


def load_trainer(run_dir: str | Path, steps: int | None = None, device: str | torch.device | None = None) -> Trainer:
    """A Trainer restored from a run directory's resume state (optionally with a new step budget)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: no such run directory")
    if not (run_dir / ck.RUN_JSON).exists():
        raise RunDirError(f"{run_dir}: not a run directory (no {ck.RUN_JSON})")
    try:
        info = read_json_file(run_dir / ck.RUN_JSON, "run config")  # regular, small, shallow: never hangs
        mcfg = ModelConfig.from_dict(info["model_config"])
        tcfg = TrainConfig.from_dict(info["train_config"])
    except (json.JSONDecodeError, KeyError, ConfigError, TypeError) as e:
        raise RunDirError(f"{run_dir / ck.RUN_JSON}: unreadable run config ({e})") from None
    if steps is not None:
        tcfg = tcfg.replace(steps=steps)
    check_memory([(mcfg, tcfg)])
    trainer = Trainer(mcfg, tcfg, run_dir=run_dir, preset=info.get("preset"), recipe=info.get("recipe"),
                      run_id=info.get("run_id"), device=resolve_device(device))
    if (run_dir / ck.RESUME).exists():
        tensors, meta = ck.read_safetensors(run_dir / ck.RESUME)
        rundir.check_resume_state(run_dir / ck.RESUME, info, meta)
        try:
            trainer.step = int(json.loads(meta["step"]))
            trainer.seconds = float(json.loads(meta.get("seconds", "0")))
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"{run_dir / ck.RESUME}: resume state has no valid step ({e})") from None
        trainer.load_resume_state(tensors, str(run_dir / ck.RESUME))
        try:
            history = read_json_file(run_dir / ck.HISTORY, "history", max_bytes=MAX_HISTORY_BYTES)
        except CheckpointError:
            history = []
        trainer.history = [r for r in history if r["step"] < trainer.step]
    check_disk_space(run_dir, mcfg, tcfg, trainer.step)  # before this changes anything in the run
    if steps is not None:
        trainer.write_run_json()
    return trainer  # final.safetensors stays until the resumed run's own replaces it


@rundir.holds_lock("run_dir", create=False)
def resume(run_dir: str | Path, steps: int | None = None, progress: bool = True,
           device: str | torch.device | None = None) -> TrainResult:
    """Continue an interrupted run from its last resume point; same final weights as if never stopped."""
    return load_trainer(run_dir, steps, device).run(progress=progress)
