"""`make notebook` opens JupyterLab on notebooks/: start it as the Makefile does (headless, on a free port)
and check through its REST API that the jupytext scripts open as notebooks with the cells of their .ipynb
pair, and that the widget (progress bars), jupytext and plotly extensions are there. Skipped where
JupyterLab is not installed (it comes with the `dev` and `notebooks` extras)."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jupytext
import pytest

pytest.importorskip("jupyterlab")
ROOT = Path(__file__).resolve().parent.parent
TOKEN = "interp-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str):
    sep = "&" if "?" in path else "?"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}{sep}token={TOKEN}", timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    port = _free_port()
    home = tmp_path_factory.mktemp("home")  # no user settings or runtime files leak in or out
    env = {**os.environ, "HOME": str(home), "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    root = ["--allow-root"] if os.geteuid() == 0 else []
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", *root, f"--port={port}",
                             f"--ServerApp.token={TOKEN}", "--ServerApp.ip=127.0.0.1", "notebooks/"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(120):
            try:
                _get(port, "/api/status")
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"JupyterLab exited: {proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not answer within 60 s")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_jupyterlab_opens_the_scripts_as_notebooks(lab):
    listing = {f["name"] for f in _get(lab, "/api/contents/")["content"]}
    scripts = sorted(p.name for p in (ROOT / "notebooks").glob("*.py"))
    assert scripts and set(scripts) <= listing
    for name in scripts:
        opened = _get(lab, f"/api/contents/{name}?type=notebook&content=1")  # jupytext's contents manager
        assert opened["type"] == "notebook"
        sources = [c["source"] for c in opened["content"]["cells"]]
        assert sources == [c.source for c in jupytext.read(ROOT / "notebooks" / name).cells]


def test_jupyterlab_has_the_widget_jupytext_and_plotly_extensions(lab):
    names = {e["name"] for e in _get(lab, "/lab/api/extensions")}
    assert {"jupyter-widgets-jupyterlab-manager", "jupyterlab-jupytext", "jupyterlab-plotly"} <= names
