"""The `interp` command line: help with examples everywhere, --json for scripts, one-line errors
with exit status 2, and the main job (`interp demo`) end to end."""

import contextlib
import io
import json
import re

import pytest

from helpers import assert_one_line_error, run_cli
from interp.cli import COMMANDS, main


def help_text(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit:
        main(argv)
    out = capsys.readouterr().out
    assert exit.value.code == 0, out
    return out


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_help_with_examples(command, capsys):
    out = help_text(["--help"] if command is None else [command, "--help"], capsys)
    assert "example" in out and "usage: interp" in out


def test_version(capsys):
    assert help_text(["--version"], capsys).startswith("interp ")


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["train", "--help"], ["sweep", "--help"]])
def test_help_and_version_import_no_torch(argv):
    """A fresh process: `interp --help` and `--version` answer without importing torch (well under 1 s)."""
    import subprocess
    import sys

    code = ("import sys\nfrom interp.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'\nprint('NO_TORCH')")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("NO_TORCH"), proc.stderr[-1000:]


def test_training_flags_come_from_the_config_fields(tmp_path, capsys, monkeypatch):
    """Every ModelConfig / TrainConfig field is a flag of `train` and `sweep`, with the field's own help;
    a field added to a config becomes a flag with no edit to the CLI."""
    import dataclasses

    from interp import config, presets

    fields = [f.name for c in (config.ModelConfig, config.TrainConfig) for f in dataclasses.fields(c)]
    train_help = help_text(["train", "--help"], capsys)
    sweep_help = help_text(["sweep", "--help"], capsys)
    for name in fields:
        flag = "--" + name.replace("_", "-")
        assert flag in train_help and flag in sweep_help, flag
    assert "AdamW learning rate" in train_help  # the comment beside `lr` in interp/config.py
    # A new field (as another module might add) is a flag at once, typed and validated.
    NewTrain = dataclasses.make_dataclass(
        "TrainConfig", [("lr_floor", float, dataclasses.field(default=0.0, metadata={"help": "lowest learning rate"}))],
        bases=(config.TrainConfig,), frozen=True)
    monkeypatch.setattr(presets, "TrainConfig", NewTrain)
    out = help_text(["train", "--help"], capsys)
    assert "--lr-floor FLOAT" in out and "lowest learning rate" in out
    assert presets.parse_value("lr_floor", "0.5") == 0.5


def test_train_flags_are_typed_and_none_switches_off(tmp_path, capsys):
    assert main(["train", "--preset", "tiny", "--steps", "3", "--stop-at-test-acc", "none", "--betas", "0.9:0.99",
                 "--stop-when-clean", "false", "--out", str(tmp_path / "r"), "--quiet", "--json"]) == 0
    run = json.loads((tmp_path / "r" / "run.json").read_text())["train_config"]
    assert run["stop_at_test_acc"] is None and run["betas"] == [0.9, 0.99] and run["steps"] == 3
    assert json.loads(capsys.readouterr().out)["stop_reason"] == "step cap: steps=3 reached"
    with pytest.raises(SystemExit) as exit:
        main(["train", "--preset", "tiny", "--steps", "1.5"])
    assert exit.value.code == 2 and "--steps: invalid int value: '1.5'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", [
    (["report", "{tmp}/missing"], "no such file"),
    (["report", "{tmp}"], "{tmp}"),  # a directory with no checkpoint in it
    (["report", "{tmp}/x.safetensors", "--every", "0"], "every must be a positive integer"),
    (["classify", "{tmp}/missing.pt"], "no such file"),
])
def test_bad_input_is_one_line_on_stderr_and_exit_2(argv, needle, tmp_path, capsys):
    (tmp_path / "x.safetensors").write_bytes(b"")
    code, err = run_cli([a.format(tmp=tmp_path) for a in argv], capsys)
    assert code == 2
    assert_one_line_error(code, err, needle.format(tmp=tmp_path))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`interp demo` end to end, shortened: (exit code, stdout, run directory)."""
    out = tmp_path_factory.mktemp("cli") / "demo"
    buf = io.StringIO()  # capsys is function-scoped
    with contextlib.redirect_stdout(buf):
        code = main(["demo", "--out", str(out), "--steps", "100", "--quiet"])
    return code, buf.getvalue(), out


def test_demo_trains_classifies_and_writes_a_report(demo):
    code, out, run_dir = demo
    assert code == 0, out
    report = run_dir / "report.html"
    assert report.exists() and (run_dir / "final.safetensors").exists()
    steps = int(re.search(r"p=59, d_model=128: (\d+) steps", out).group(1))  # the default preset, pizza-a
    assert steps <= 100 and json.loads((run_dir / "history.json").read_text())[-1]["step"] == steps
    assert "verdict: " in out
    assert f"report: {report}" in out and report.resolve().as_uri() in out


def test_report_and_classify_json_for_scripts(demo, tmp_path, capsys):
    _, _, run_dir = demo
    capsys.readouterr()
    assert main(["report", str(run_dir), "-o", str(tmp_path / "r.html"), "--json", "--quiet"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["report"] == str(tmp_path / "r.html") and got["url"].startswith("file://")
    assert got["classification"]["label"] in ("clock", "pizza", "mixed", "ambiguous", "non-generalizing")
    assert len(got["figures"]) == 9 and (tmp_path / "r.html").stat().st_size == got["bytes"]
    assert main(["classify", str(run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["label"] == got["classification"]["label"]


def test_train_json(tmp_path, capsys):
    capsys.readouterr()
    assert main(["train", "--preset", "tiny", "--steps", "20", "--out", str(tmp_path / "t"), "--json", "--quiet"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["step"] == 20 and got["run_dir"] == str(tmp_path / "t")


def test_demo_refuses_to_replace_another_run_without_overwrite(tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    code, err = run_cli(["demo", "--out", other, "--steps", "10", "--quiet"], capsys)
    assert_one_line_error(code, err, "not empty", "--overwrite")
    assert (other / "notes.txt").read_text() == "keep me"
