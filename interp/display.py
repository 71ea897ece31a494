"""How results look in Jupyter: result dataclasses as a compact HTML table (`HTMLRepr`), and progress
bars that use the notebook widget when Jupyter can show it and plain text otherwise (`tqdm`), never
`TqdmWarning: IProgress not found` (what tqdm.auto prints in a kernel without ipywidgets).
"""

from __future__ import annotations

import dataclasses
import html
import sys

import torch

MAX_ITEMS = 6  # a list, dict or tensor shows its first few values; more are summarised


def _short(v, depth: int = 0) -> str:
    """One short line for any field value: numbers to 4 significant digits, tensors by shape (and values when small)."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return v if len(v) <= 120 else v[:117] + "..."
    if isinstance(v, torch.Tensor):
        if v.numel() == 1:
            return _short(v.item())
        shape = "×".join(map(str, v.shape))
        if v.ndim == 1 and v.numel() <= MAX_ITEMS:
            return f"[{', '.join(_short(x) for x in v.tolist())}]"
        return f"tensor [{shape}] {str(v.dtype).removeprefix('torch.')}"
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return f"{type(v).__name__}(…)" if depth else _short(dataclasses.asdict(v), depth + 1)
    if isinstance(v, dict):
        items = [f"{_short(k, 1)}: {_short(x, 1)}" for k, x in list(v.items())[:MAX_ITEMS]]
        more = f", … ({len(v)} in all)" if len(v) > MAX_ITEMS else ""
        return "{" + ", ".join(items) + more + "}"
    if isinstance(v, (list, tuple)):
        items = [_short(x, depth + 1) for x in v[:MAX_ITEMS]]
        more = f", … ({len(v)} in all)" if len(v) > MAX_ITEMS else ""
        return ("[" + ", ".join(items) + more + "]") if isinstance(v, list) else ("(" + ", ".join(items) + more + ")")
    return _short(str(v))


def html_table(obj) -> str:
    """A dataclass instance as a two-column HTML table (field, value), one short line per field."""
    rows = "".join(
        f"<tr><td style='text-align:left'><code>{html.escape(f.name)}</code></td>"
        f"<td style='text-align:left'>{html.escape(_short(getattr(obj, f.name)))}</td></tr>"
        for f in dataclasses.fields(obj) if f.repr
    )
    return (f"<table><caption style='text-align:left'><b>{html.escape(type(obj).__name__)}</b></caption>"
            f"<tbody>{rows}</tbody></table>")


class HTMLRepr:
    """Mixin for result dataclasses: Jupyter shows them as html_table instead of a screen-long repr."""

    def _repr_html_(self) -> str:
        return html_table(self)


def notebook_widgets() -> bool:
    """True inside a Jupyter kernel that can draw ipywidgets (the notebook progress bar)."""
    ipython = sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython else None
        if shell is None or "IPKernelApp" not in shell.config:
            return False
        import ipywidgets  # noqa: F401
    except Exception:  # no kernel, or no ipywidgets: plain text bars
        return False
    return True


def tqdm(*args, **kwargs):
    """A tqdm progress bar: the notebook widget in Jupyter with ipywidgets, else the text bar."""
    if notebook_widgets():
        from tqdm.notebook import tqdm as bar
    else:
        from tqdm.std import tqdm as bar
    return bar(*args, **kwargs)
