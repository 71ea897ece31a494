"""`interp` command line. Every command has --help with examples; user errors print one line
(`interp: error: ...`) and exit 2, never a traceback.

Each command is a pair: `add_NAME(sub)` declares its arguments, `run_NAME(args)` does the work
and returns the exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

from interp import rundir
from interp.errors import InterpError
from interp.verdicts import CLI_DESCRIPTION

EXIT_ERROR = 2


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


# ---- train ---------------------------------------------------------------------------------------
def add_train(sub) -> None:
    from interp.presets import DESCRIPTIONS, RECIPES

    p = sub.add_parser(
        "train", help="train a model on (a + b) mod p", formatter_class=_formatter,
        description="Train a transformer on (a + b) mod p, saving history and checkpoints to a run directory.\n"
        "A preset fixes the task and architecture, a recipe the optimiser; any setting below overrides both.\n\n"
        "presets:\n" + "\n".join(f"  {k:8s} {v}" for k, v in DESCRIPTIONS.items())
        + "\n\nrecipes (published = the paper's own):\n"
        + "\n".join(f"  {k:8s} {', '.join(v)}" for k, v in RECIPES.items()),
        epilog="examples:\n"
        "  interp train --preset tiny --out checkpoints/tiny\n"
        "  interp train --preset nanda --recipe fast --out checkpoints/nanda\n"
        "  interp train --preset pizza-a --out checkpoints/a --steps 5000 --attn-rate 0.3\n"
        "  interp train --resume checkpoints/nanda          # continue an interrupted run\n"
        "  interp train --preset tiny --steps 200 --json --quiet   # final metrics as JSON, for scripts\n"
        "then: interp classify RUN_DIR, interp report RUN_DIR\n\n"
        "exit status: 0 when the run is saved, 2 on bad input (one line on stderr), 130 if interrupted",
    )
    p.add_argument("--preset", default=None, help="named setup (default: tiny)")
    p.add_argument("--recipe", default=None, help="optimisation recipe of the preset (default: published)")
    p.add_argument("--out", type=Path, help="run directory (default: checkpoints/PRESET)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    add_device(p)
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_settings(p, sweep=False)


# Notes the flags add to a field's own help (the help itself comes from interp/config.py).
_NOTES = {"d_model": "; alone, it keeps 4 heads and d_mlp = 4 d_model"}
_SWEEP_ALIASES = {"seed": ("--seeds",), "data_seed": ("--data-seeds",)}


def _typed(name: str, kind: str):
    """argparse type for config field `name`: a bad value reads "invalid int value: '2.5'"."""
    def parse(text: str):
        from interp.presets import parse_value

        return parse_value(name, text)  # ConfigError is a ValueError: argparse reports it
    parse.__name__ = "B1:B2 pair" if kind.startswith("tuple") else kind.split(" ")[0]
    return parse


def add_settings(p, sweep: bool) -> None:
    """One flag per ModelConfig / TrainConfig field (interp.presets.settings), help from the field.
    In a sweep a flag takes a comma list (an axis of the grid) or one value (a fixed setting)."""
    from interp.presets import settings

    groups = {"ModelConfig": p.add_argument_group("model settings (override the preset)"),
              "TrainConfig": p.add_argument_group("training settings (override the preset and recipe)")}
    for s in settings().values():
        flags = ["--" + s.name.replace("_", "-"), *(_SWEEP_ALIASES.get(s.name, ()) if sweep else ())]
        text = s.help + _NOTES.get(s.name, "")
        if sweep:
            groups[s.owner].add_argument(*flags, dest=s.name, default=argparse.SUPPRESS, metavar="V[,V...]", help=text)
        else:
            groups[s.owner].add_argument(*flags, dest=s.name, default=argparse.SUPPRESS, type=_typed(s.name, s.kind),
                                         choices=s.choices, metavar=_metavar(s.kind) if s.choices is None else None,
                                         help=text)


def _metavar(kind: str) -> str:
    return "B1:B2" if kind.startswith("tuple") else kind.replace(" | None", "|none").upper()


def add_device(p, analysis: bool = False) -> None:
    default = ("default: cpu, where verdicts were calibrated" if analysis
               else "default: the best available: cuda, then mps, then cpu")
    p.add_argument("--device", default=None, metavar="DEVICE",
                   help=f"{'compute on ' if analysis else ''}cpu, cuda (cuda:N) or mps ({default})")


def _given_settings(args) -> dict:
    """The config fields given on the command line (absent flags are not in args at all)."""
    from interp.presets import settings

    return {k: getattr(args, k) for k in settings() if hasattr(args, k)}


def run_train(args) -> int:
    from interp.training import resume, train

    overrides = _given_settings(args)
    if args.resume:
        given = [f for f in overrides if f != "steps"]
        if given or args.preset or args.recipe:
            raise InterpError(f"--resume continues a run as configured; only --steps may change (got {', '.join(given) or 'a preset'})")
        result = resume(args.resume, steps=overrides.get("steps"), progress=not args.quiet, device=args.device)
    else:
        preset = args.preset or "tiny"
        out = args.out or Path("checkpoints") / preset
        result = train(preset, args.recipe, out, overwrite=args.overwrite, progress=not args.quiet, device=args.device,
                       **overrides)
    final = dict(result.final, run_dir=str(result.run_dir), stopped_early=result.stopped_early,
                 stop_reason=result.stop_reason)
    if args.json:
        _print_json(final)
    else:
        print(f"step {result.step}: train acc {final['train_acc']:.4f}, test acc {final['test_acc']:.4f}, "
              f"test loss {final['test_loss']:.3g} ({result.seconds:.1f} s)")
        print(f"stopped: {result.stop_reason}")
        print(f"run saved in {result.run_dir}")
    return 0


# ---- classify ------------------------------------------------------------------------------------
def add_classify(sub) -> None:
    p = sub.add_parser(
        "classify", help="clock, pizza, or neither?", formatter_class=_formatter,
        description=CLI_DESCRIPTION + "\n\n"
        "PATH: an interp checkpoint or run directory, or a foreign checkpoint recognised from its contents:\n"
        "TransformerLens HookedTransformer state dicts (alone, in the Grokking demo's or ARENA's run file, or\n"
        "the progress-measures trainer's file), TransformerLens 4 TransformerBridge state dicts, and\n"
        "Nanda-original / Clock-Pizza state dicts. A JSON config is found next to the file as NAME.json,\n"
        "config_<run>.json beside model_<run>.pt (the Clock/Pizza authors' save/ folder) or config.json,\n"
        "or given with --config (a bridge file needs its TransformerBridgeConfig fields).",
        epilog="examples:\n"
        "  interp classify checkpoints/tiny\n"
        "  interp classify checkpoints/pizza-a/final.safetensors --json\n"
        "  interp classify model.pt --config model.json     # Clock/Pizza checkpoint and its config\n"
        "  interp classify grokking_demo.pth                # TransformerLens Grokking demo file\n\n"
        "exit status: 0 with a verdict (any label), 2 on bad input",
    )
    p.add_argument("path", type=Path, metavar="PATH", help="checkpoint file or run directory")
    p.add_argument("--config", type=Path, metavar="FILE", help="JSON config for a foreign checkpoint")
    add_device(p, analysis=True)
    p.add_argument("--json", action="store_true", help="print the full result as JSON")


def run_classify(args) -> int:
    from interp.classifier import circle_lines, classify

    result = classify(args.path, config=args.config, device=args.device)
    if args.json:
        print(result.to_json())
        return 0
    from interp.tasks import FORMULAS

    print(f"{result.label} (confidence {result.confidence:.2f})")
    task = result.model.get("task", "add")
    print(f"task: {task} ({FORMULAS[task]} mod {result.model['p']})"
          + (f"; {result.model['coordinates']}" if "coordinates" in result.model else ""))
    print(result.explanation)
    if result.reliability:
        print(f"  ({result.reliability})")
    scores = ("accuracy", "gradient_symmetricity", "distance_irrelevance", "distance_irrelevance_max_wrong",
              "circularity", "clock_template_fve", "pizza_template_fve", "pizza_exact_template_fve")
    for name in scores:
        value = getattr(result, name)
        print(f"  {name:32s} " + (f"{value:.4f}" if value == value else "not measured"))  # NaN: not-defined
    print(f"  {'key_frequencies':32s} {result.key_frequencies} (from the {result.key_frequency_source})")
    for line in circle_lines(result):
        print(line)
    if result.source:
        print(f"  source: {result.source}")
    return 0


# ---- report --------------------------------------------------------------------------------------
def add_report(sub) -> None:
    p = sub.add_parser(
        "report", help="one self-contained HTML page showing a model's algorithm", formatter_class=_formatter,
        description="Write one HTML page for a model: the verdict of `interp classify` and its explanation, the scores\n"
        "beside their reference ranges (Zhong et al. 2023 and the classifier's thresholds), key frequencies,\n"
        "embedding circles, attention and neuron maps, neuron clusters and the logit spectrum; for a run\n"
        "directory also the training curves and the progress measures with their phases (Nanda et al. 2023).\n"
        "plotly.js is inlined: the page opens offline, in any browser, and can be attached as it is.\n\n"
        "PATH: an interp checkpoint or run directory, or a foreign checkpoint (see `interp classify --help`).",
        epilog="examples:\n"
        "  interp report checkpoints/tiny                      # -> checkpoints/tiny/report.html\n"
        "  interp report checkpoints/nanda -o nanda.html --every 2\n"
        "  interp report model.pt --config model.json          # foreign checkpoint -> model.report.html\n"
        "  interp report checkpoints/tiny --json --quiet       # the verdict and the path, for scripts\n\n"
        "exit status: 0 when the report is written (whatever the verdict), 2 on bad input",
    )
    p.add_argument("path", type=Path, metavar="PATH", help="checkpoint file or run directory")
    p.add_argument("--config", type=Path, metavar="FILE", help="JSON config for a foreign checkpoint")
    p.add_argument("-o", "--out", type=Path, metavar="FILE",
                   help="HTML file to write (default: PATH/report.html for a directory, STEM.report.html beside a file)")
    p.add_argument("--every", type=int, metavar="N",
                   help="progress measures on every N-th snapshot (default: at most 20 snapshots)")
    add_device(p, analysis=True)
    p.add_argument("--json", action="store_true", help="print the report path and the classification as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _write_report(path: Path, out: Path | None, config, every: int | None, quiet: bool, device=None):
    """(Report, path written) for `report` and `demo`."""
    from interp.report import default_output, render

    rep = render(path, config, every=every, progress=not quiet, device=device)
    return rep, rep.write(out or default_output(path))


def _report_summary(rep, written: Path) -> dict:
    return {"report": str(written), "url": written.resolve().as_uri(), "bytes": written.stat().st_size,
            "seconds": round(rep.seconds, 2), "figures": rep.figures, "notes": rep.notes}


def _print_report(rep, written: Path) -> None:
    c = rep.classification
    print(f"verdict: {c.label} (confidence {c.confidence:.2f})")
    print(f"  {c.explanation}")
    for note in rep.notes:
        print(f"  not shown: {note}")
    print(f"report: {written} ({written.stat().st_size / 2**20:.1f} MB, {len(rep.figures)} figures, {rep.seconds:.1f} s)")
    print(f"open:   {written.resolve().as_uri()}")


def run_report(args) -> int:
    rep, written = _write_report(args.path, args.out, args.config, args.every, args.quiet, args.device)
    if args.json:
        _print_json(dict(_report_summary(rep, written), classification=rep.classification.to_dict()))
    else:
        _print_report(rep, written)
    return 0


# ---- sweep ---------------------------------------------------------------------------------------
def add_sweep(sub) -> None:
    p = sub.add_parser(
        "sweep", help="train a grid of models at once", formatter_class=_formatter,
        description="Train every combination of the given values on a preset, many models at once: models that\n"
        "share a shape and a recipe are stacked and trained as one (torch.func.vmap), each with the same\n"
        "result as training it alone. Each model gets an ordinary run directory (OUT/runs/NAME), is classified\n"
        "when interp.classify is available, and gets a row in OUT/results.csv and OUT/results.json.\n"
        "A comma list is an axis of the grid; a single value is a fixed setting.\n"
        "With --backend ray each group of stacked models is a Ray task: on a local Ray started here with\n"
        "--workers CPUs, or on the cluster at --address (needs Ray: pip install -e \".[ray]\").",
        epilog="examples:\n"
        "  interp sweep --preset pizza-a --attn-rate 0,0.5,1 --d-model 32,64 --seeds 0,1 --out sweeps/x\n"
        "  interp sweep --preset nanda --recipe fast --seeds 0,1,2,3 --data-seeds 0,1 --out sweeps/seeds\n"
        "  interp sweep --preset tiny --set weight_decay=0.3,1,3 --set warmup_steps=0,50 --out sweeps/wd\n"
        "  interp sweep --resume sweeps/x           # continue an interrupted sweep, keeping finished models\n"
        "  interp sweep --preset pizza-a --attn-rate 0,0.5,1 --d-model 32,64 --backend ray --workers 2 --out sweeps/r\n"
        "  interp sweep --resume sweeps/r --backend ray --address HEAD:6379   # on a Ray cluster (`ray start --head`)",
    )
    p.add_argument("--preset", default=None, help="named setup (default: tiny)")
    p.add_argument("--recipe", default=None, help="optimisation recipe of the preset (default: published)")
    p.add_argument("--out", type=Path, help="sweep directory (default: checkpoints/sweeps/PRESET)")
    p.add_argument("--resume", type=Path, metavar="SWEEP_DIR", help="continue the sweep in SWEEP_DIR")
    p.add_argument("--overwrite", action="store_true", help="replace an existing sweep directory")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=V[,V...]",
                   help="any model or training setting, e.g. warmup_steps=0,10 (repeatable)")
    p.add_argument("--sequential", action="store_true", help="train one model after another (no stacking)")
    p.add_argument("--group-size", type=int, metavar="N",
                   help="most models per stacked group (default: from the device's memory and the model's size)")
    p.add_argument("--backend", choices=("inprocess", "ray"), default="inprocess",
                   help="inprocess: groups one after another here (default); ray: each group a Ray task")
    p.add_argument("--address", metavar="ADDR", help="Ray cluster to use (default: start a local Ray)")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="groups at once on a local Ray (default: 2)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch threads per group (default: this process's in-process, 1 per Ray task; "
                   "equal counts give bit-identical weights across backends)")
    p.add_argument("--no-classify", action="store_true", help="skip classifying the trained models")
    add_device(p)
    p.add_argument("--json", action="store_true", help="print the result table as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_settings(p, sweep=True)


def run_sweep(args) -> int:
    from interp.presets import parse_value
    from interp.sweeps import resume_sweep, sweep

    progress, classify = not args.quiet, not args.no_classify
    options = dict(backend=args.backend, address=args.address, workers=args.workers, threads=args.threads,
                   group_size=args.group_size)
    given = list(_given_settings(args).items())
    for item in args.set:
        field, sep, values = item.partition("=")
        if not sep or not values:
            raise InterpError(f"--set {item!r}: expected FIELD=V[,V...]")
        given.append((field.strip().replace("-", "_"), values))
    if args.resume:
        if given or args.preset or args.recipe or args.out:
            raise InterpError("--resume continues a sweep as configured; give no other settings")
        result = resume_sweep(args.resume, progress=progress, classify=classify, device=args.device, **options)
    else:
        settings = {}
        for field, text in given:
            values = [parse_value(field, v) for v in text.split(",")]
            settings[field] = values if len(values) > 1 else values[0]
        preset = args.preset or "tiny"
        out = args.out or Path("checkpoints") / "sweeps" / preset
        result = sweep(preset, args.recipe, out, sequential=args.sequential, classify=classify,
                       overwrite=args.overwrite, progress=progress, device=args.device, **options, **settings)
    if args.json:
        _print_json(result.rows)
        return 0
    for row in result.rows:
        label = f", {row['classify.label']}" if "classify.label" in row else ""
        print(f"{row['name']}: step {row['step']}, test acc {row['test_acc']:.4f}{label}")
    print(f"{len(result.rows)} models in {result.seconds:.1f} s; table in {result.out / 'results.csv'}")
    return 0


# ---- demo ----------------------------------------------------------------------------------------
# The demo's default run: the pizza-a preset (Zhong et al.: p = 59, d_model 128) with its fast recipe,
# which trains until the circuit is clean (interp.stopping) — about 200 steps, seconds on a CPU — and
# ends in a clear verdict. The tiny preset (p = 23, d_model 32) is faster still, but its circles are
# not clean clocks or pizzas (it classifies as ambiguous or mixed), so it makes a poor first example.
DEMO_PRESET, DEMO_RECIPE = "pizza-a", "fast"
DEMO_OUT = Path("checkpoints/demo")


def add_demo(sub) -> None:
    p = sub.add_parser(
        "demo", help="the main job: train a small model, classify it, write its report", formatter_class=_formatter,
        description="The whole story in one go: train a model on (a + b) mod p, classify its algorithm (clock or\n"
        "pizza) and write its HTML report (see `interp report --help`); print the verdict and where the report is.\n\n"
        f"default: the {DEMO_PRESET} preset (Zhong et al.: p=59, d_model 128, attention rate 1 -> a pizza) with its\n"
        f"{DEMO_RECIPE} recipe, trained until its circuit is clean (interp.stopping): a few hundred steps.\n"
        "--preset / --recipe train any other setup as `interp train` would (a preset's fast recipe when it has one).",
        epilog="examples:\n"
        "  interp demo                                       # -> checkpoints/demo/report.html\n"
        "  interp demo --out /tmp/demo --quiet\n"
        "  interp demo --preset nanda --out checkpoints/demo-clock   # Nanda's model: a clock\n"
        "  interp demo --steps 100 --json                    # shorter; machine-readable summary",
    )
    p.add_argument("--preset", default=None, help=f"named setup (default: {DEMO_PRESET})")
    p.add_argument("--recipe", default=None, help="optimisation recipe of the preset (default: fast if it has one)")
    p.add_argument("--steps", type=int, help="training steps (default: the recipe's)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help=f"run directory (default: {DEMO_OUT}, replaced on each run)")
    p.add_argument("--overwrite", action="store_true", help="replace the run in a non-empty --out directory")
    add_device(p)
    p.add_argument("--json", action="store_true", help="print the run, verdict and report path as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _demo_train(args):
    from interp.presets import RECIPES
    from interp.training import train

    out = args.out or DEMO_OUT
    common = dict(out=out, overwrite=args.overwrite or args.out is None, progress=not args.quiet, device=args.device)
    steps = {} if args.steps is None else {"steps": args.steps}
    preset = args.preset or DEMO_PRESET
    recipe = args.recipe or ("fast" if "fast" in RECIPES.get(preset, {}) else None)
    return train(preset, recipe, **common, **steps)


@rundir.holds_lock(lambda args: args.out or DEMO_OUT)  # training and the report: one writer
def run_demo(args) -> int:
    say = (lambda *a: None) if args.json else print  # noqa: E731 - with --json, stdout is the JSON alone
    say("training ...")
    result = _demo_train(args)
    f, cfg = result.final, result.model.cfg
    say(f"trained p={cfg.p}, d_model={cfg.d_model}: {result.step} steps in {result.seconds:.1f} s, "
        f"train acc {f['train_acc']:.3f}, test acc {f['test_acc']:.3f}; run in {result.run_dir}")
    say(f"stopped: {result.stop_reason}")
    say("classifying and writing the report ...")
    # the report's analyses on the device asked for, else the CPU (as `interp report`)
    rep, written = _write_report(result.run_dir, None, None, None, args.quiet, args.device)
    if args.json:
        _print_json(dict(_report_summary(rep, written), run_dir=str(result.run_dir),
                         train=dict(f, step=result.step, stop_reason=result.stop_reason),
                         classification=rep.classification.to_dict()))
    else:
        _print_report(rep, written)
    return 0


COMMANDS = ("train", "classify", "report", "sweep", "demo")


def build_parser() -> argparse.ArgumentParser:
    from interp import __version__

    parser = argparse.ArgumentParser(
        prog="interp", formatter_class=_formatter,
        description="Mechanistic interpretability of grokking on modular addition: train a one-layer transformer\n"
        "on (a + b) mod p, look inside it with Fourier probes, and classify it as a clock or a pizza.\n"
        "`interp COMMAND --help` shows each command's options and examples.",
        epilog="examples:\n"
        "  interp demo                                   # train, classify and report a small model (~30 s)\n"
        "  interp train --preset nanda --recipe fast --out checkpoints/nanda\n"
        "  interp classify checkpoints/nanda\n"
        "  interp report checkpoints/nanda -o nanda.html\n"
        "  interp sweep --preset pizza-a --attn-rate 0,0.5,1 --seeds 0,1 --out sweeps/alpha\n\n"
        "exit status: 0 on success, 2 on bad input (one line on stderr: interp: error: ...), 130 if interrupted",
    )
    parser.add_argument("--version", action="version", version=f"interp {__version__}")
    parser.add_argument("--verbose", action="store_true", help="also print library warnings (hidden by default); "
                        "accepted after the command too")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        globals()[f"add_{name}"](sub)
    return parser


def one_line(text) -> str:
    """`text` with control and other unprintable characters escaped (\\n, \\x1b, ...): a message
    holding a path or a file's contents stays one line, and cannot forge a line of its own."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def print_error(message) -> int:
    print(f"interp: error: {one_line(message)}", file=sys.stderr)
    return EXIT_ERROR


class _Collect(logging.Handler):
    """Keeps log records (libraries' logging.warning) for --verbose instead of printing them."""

    def __init__(self, into: list):
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record):
        self.into.append(f"{record.name}: {record.getMessage()}")


def _dispatch(args, verbose: bool) -> int:
    """Run the command; exceptions a user can act on become one line and exit 2. Library warnings
    (torch's UserWarnings on older pickles, ...) are collected: printed with --verbose, else dropped,
    so stderr is empty on success and one line on failure."""
    notes: list[str] = []
    handler, root = _Collect(notes), logging.getLogger()
    root.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                return globals()[f"run_{args.command.replace('-', '_')}"](args)
            except InterpError as e:
                return print_error(e)
            except KeyboardInterrupt:
                print("interp: interrupted", file=sys.stderr)
                return 130
            except OSError as e:
                return print_error(f"{e.filename or ''}{': ' if e.filename else ''}{e.strerror or e}")
            except (MemoryError, RecursionError) as e:  # a safety net: loaders turn these into CheckpointError
                if verbose:
                    raise
                return print_error(f"{type(e).__name__} ({str(e)[:200]}); rerun with --verbose for the traceback")
            finally:
                notes[:0] = [f"{w.category.__name__}: {w.message}" for w in caught]
    finally:
        root.removeHandler(handler)
        if verbose:
            for note in notes:
                print(f"interp: warning: {one_line(note)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    end = argv.index("--") if "--" in argv else len(argv)
    verbose = "--verbose" in argv[:end]  # accepted anywhere before `--`, as a global flag
    argv = [a for i, a in enumerate(argv) if not (a == "--verbose" and i < end)]
    args = build_parser().parse_args(argv)
    return _dispatch(args, verbose)


if __name__ == "__main__":
    sys.exit(main())
