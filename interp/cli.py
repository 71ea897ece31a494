"""`interp` command line. Every command has --help with examples; user errors print one line
(`interp: error: ...`) and exit 2, never a traceback.

Each command is a pair: `add_NAME(sub)` declares its arguments, `run_NAME(args)` does the work
and returns the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from interp.errors import InterpError

EXIT_ERROR = 2


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


# ---- train ---------------------------------------------------------------------------------------
def add_train(sub) -> None:
    from interp.presets import DESCRIPTIONS

    p = sub.add_parser(
        "train", help="train a model on (a + b) mod p", formatter_class=_formatter,
        description="Train a transformer on (a + b) mod p, saving history and checkpoints to a run directory.\n\n"
        "presets:\n" + "\n".join(f"  {k:8s} {v}" for k, v in DESCRIPTIONS.items()),
        epilog="examples:\n"
        "  interp train --preset tiny --out checkpoints/tiny\n"
        "  interp train --preset nanda --recipe fast --out checkpoints/nanda\n"
        "  interp train --preset pizza-a --out checkpoints/a --steps 5000 --attn-rate 0.3\n"
        "  interp train --resume checkpoints/nanda          # continue an interrupted run",
    )
    p.add_argument("--preset", default=None, help="named setup (default: tiny)")
    p.add_argument("--recipe", default=None, help="optimisation recipe of the preset (default: published)")
    p.add_argument("--out", type=Path, help="run directory (default: checkpoints/PRESET)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--steps", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--warmup-steps", type=int)
    p.add_argument("--train-frac", type=float)
    p.add_argument("--seed", type=int, help="model initialisation seed")
    p.add_argument("--data-seed", type=int, help="train/test split seed")
    p.add_argument("--grokfast-lambda", type=float, help="Grokfast-EMA amplification (0 = off)")
    p.add_argument("--grokfast-alpha", type=float, help="Grokfast-EMA decay")
    p.add_argument("--log-every", type=int)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--stop-at-test-acc", type=float, help="stop once test accuracy reaches this (e.g. 0.99)")
    p.add_argument("--p", type=int, help="modulus")
    p.add_argument("--d-model", type=int, help="width (keeps 4 heads and d_mlp = 4 d_model)")
    p.add_argument("--attn-rate", type=float, help="attention rate alpha in [0, 1]")
    p.add_argument("--act-fn", choices=["relu", "gelu"])
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


_TRAIN_FIELDS = ("steps", "lr", "weight_decay", "warmup_steps", "train_frac", "seed", "data_seed", "grokfast_lambda",
                 "grokfast_alpha", "log_every", "checkpoint_every", "stop_at_test_acc", "p", "d_model", "attn_rate",
                 "act_fn")


def run_train(args) -> int:
    from interp.train import resume, train

    if args.resume:
        given = [f for f in _TRAIN_FIELDS if f != "steps" and getattr(args, f) is not None]
        if given or args.preset or args.recipe:
            raise InterpError(f"--resume continues a run as configured; only --steps may change (got {', '.join(given) or 'a preset'})")
        result = resume(args.resume, steps=args.steps, progress=not args.quiet)
    else:
        preset = args.preset or "tiny"
        out = args.out or Path("checkpoints") / preset
        overrides = {f: getattr(args, f) for f in _TRAIN_FIELDS if getattr(args, f) is not None}
        result = train(preset, args.recipe, out, overwrite=args.overwrite, progress=not args.quiet, **overrides)
    final = dict(result.final, run_dir=str(result.run_dir), stopped_early=result.stopped_early)
    if args.json:
        _print_json(final)
    else:
        print(f"step {result.step}: train acc {final['train_acc']:.4f}, test acc {final['test_acc']:.4f}, "
              f"test loss {final['test_loss']:.3g} ({result.seconds:.1f} s)")
        print(f"run saved in {result.run_dir}")
    return 0


# ---- classify ------------------------------------------------------------------------------------
def add_classify(sub) -> None:
    sub.add_parser("classify", help="clock, pizza, or neither? (not implemented yet)")


def run_classify(args) -> int:
    raise InterpError("classify is not implemented yet")


# ---- report --------------------------------------------------------------------------------------
def add_report(sub) -> None:
    sub.add_parser("report", help="one HTML page showing a model's algorithm (not implemented yet)")


def run_report(args) -> int:
    raise InterpError("report is not implemented yet")


# ---- sweep ---------------------------------------------------------------------------------------
def add_sweep(sub) -> None:
    sub.add_parser("sweep", help="train a grid of models at once (not implemented yet)")


def run_sweep(args) -> int:
    raise InterpError("sweep is not implemented yet")


# ---- demo ----------------------------------------------------------------------------------------
def add_demo(sub) -> None:
    p = sub.add_parser("demo", help="the main job: train a small model, classify it, write its report",
                       formatter_class=_formatter, epilog="example:\n  interp demo --out checkpoints/demo")
    p.add_argument("--out", type=Path, default=Path("checkpoints/demo"), help="run directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run_demo(args) -> int:
    from interp.train import train

    result = train("tiny", out=args.out, overwrite=True, progress=not args.quiet)
    f = result.final
    print(f"trained tiny preset: step {result.step}, train acc {f['train_acc']:.4f}, test acc {f['test_acc']:.4f} "
          f"({result.seconds:.1f} s); run in {result.run_dir}")
    return 0


COMMANDS = ("train", "classify", "report", "sweep", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="interp", formatter_class=_formatter,
        description="Mechanistic interpretability of grokking on modular addition.",
        epilog="examples:\n  interp demo\n  interp train --preset nanda --recipe fast\n"
        "  interp classify checkpoints/nanda\n  interp report checkpoints/nanda -o nanda.html",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        globals()[f"add_{name}"](sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return globals()[f"run_{args.command.replace('-', '_')}"](args)
    except InterpError as e:
        print(f"interp: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interp: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"interp: error: {e.filename or ''}{': ' if e.filename else ''}{e.strerror or e}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
