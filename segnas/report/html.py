"""``segnas report``: one self-contained HTML page of a run folder (or of a folder of runs, such as a demo).

The page holds everything inline: drawings, curves and prediction panels as PNG data URIs, styles in one
``<style>`` element, no script, and a Content-Security-Policy that lets it load nothing else, so it opens
offline, from a mail attachment or an archive, exactly as written. It shows, for each run: a header (method,
strategy, space, archid, dataset, when, versions), the architecture drawings of its space, the search's
curves per epoch or per trial, the retrain's curves, per-class IoU and a few predictions beside the ground
truth (retrains: the best checkpoint on the first val images), the cost table (parameters, multiply-adds,
latency per backend) and the configuration files. What a run lacks is left out.

The sections come from :mod:`segnas.report.sections`, the pieces of markup from :mod:`segnas.report.markup`.
The file carries segnas' mark (``<meta name="segnas_output" content="report">``), so a second report replaces
the first while a file segnas did not write is refused without ``--force``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from .. import __version__
from ..fileio import atomic_write_text
from ..outputs import MARK, claim_file
from ..cost import DEFAULT_BACKENDS
from .markup import esc
from .rundata import Run, find_runs
from .sections import analyse, anchor, overview_section, run_section

COMMAND = "report"
FILE_NAME = "report.html"
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1280px;
       padding: 0 24px 48px; color: #1d1d1f; background: #fff; line-height: 1.4; }
h1 { font-size: 26px; margin: 24px 0 4px; }
h2 { font-size: 21px; margin: 36px 0 8px; padding-top: 12px; border-top: 3px solid #4a6fa5; }
h3 { font-size: 16px; margin: 22px 0 6px; color: #333; }
p.meta, p.note { color: #555; font-size: 13px; margin: 4px 0; }
p.note { font-style: italic; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0 12px; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f5f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv th { width: 160px; }
img { max-width: 100%; height: auto; display: block; margin: 6px 0; border: 1px solid #eee; }
img.pred { image-rendering: pixelated; width: 100%; max-width: 900px; }
.bar { display: inline-block; height: 10px; background: #4a6fa5; vertical-align: middle; margin-right: 6px; }
pre { background: #f6f8fa; padding: 8px; font-size: 12px; overflow-x: auto; white-space: pre; max-height: 480px; }
details { margin: 4px 0; }
summary { cursor: pointer; font-weight: 600; font-size: 14px; }
nav ul { margin: 4px 0; padding-left: 20px; font-size: 14px; }
.err { color: #b42318; }
"""


# ---------------------------------------------------------------- the file and its mark

def claim_report(path: str | Path, force: bool = False) -> Path:
    """``path`` as the report's output: new, an earlier report, or ``force``; otherwise one ConfigError line."""
    return claim_file(path, COMMAND, force)


def page(title: str, subtitle: str, nav: str, body: str) -> str:
    """The whole document: its mark and policy first in the head, then the given (escaped) parts."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="{MARK}" content="{COMMAND}">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="segnas {esc(__version__)}">
<title>{esc(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{esc(title)}</h1>
<p class="meta">{esc(subtitle)}</p>
{nav}
{body}
</body>
</html>
"""


# ---------------------------------------------------------------- the command

def render(folder: Path, runs: list[Run], what: str, images: int = 4, backends: Sequence[str] = DEFAULT_BACKENDS,
           latency: bool = True, size: tuple[int, int] | None = None,
           log: Callable[[str], None] = lambda line: None) -> str:
    """The HTML text of the report of ``runs``, found in ``folder`` (``what``: see :func:`find_runs`)."""
    views = [analyse(run, images, backends, latency, size, log) for run in runs]
    drawn: dict[str, bytes | None] = {}
    for view in views:
        view.drawn = drawn
    subtitle = (f"{folder.resolve()}; {len(runs)} run{'s' if len(runs) > 1 else ''}; reported "
                f"{time.strftime('%Y-%m-%d %H:%M:%S')} by segnas {__version__} (torch {torch.__version__})")
    if len(views) == 1 and what == "run":
        return page(f"segnas report: {runs[0].name}", subtitle, "", run_section(views[0], backends, latency))
    nav = "<nav><ul>" + "".join(f'<li><a href="#{anchor(v.run)}">{esc(v.run.name)}</a> ({esc(v.run.kind)})</li>'
                                for v in views) + "</ul></nav>"
    body = ("<h2 id=\"overview\">overview</h2>" + overview_section(views, backends, latency) + "\n"
            + "\n".join(run_section(v, backends, latency) for v in views))
    return page(f"segnas report: {folder.resolve().name} ({what})", subtitle, nav, body)


def build_report(folder: str | Path, images: int = 4, backends: Sequence[str] = DEFAULT_BACKENDS,
                 latency: bool = True, size: tuple[int, int] | None = None,
                 log: Callable[[str], None] = lambda line: None) -> str:
    """The HTML text of the report of ``folder`` (a run, or a folder of runs)."""
    runs, what = find_runs(folder)
    return render(Path(folder), runs, what, images, backends, latency, size, log)


def write_report(folder: str | Path, out: str | Path | None = None, force: bool = False, images: int = 4,
                 backends: Sequence[str] = DEFAULT_BACKENDS, latency: bool = True,
                 size: tuple[int, int] | None = None, log: Callable[[str], None] = lambda line: None) -> Path:
    """Write the report of ``folder`` to ``out`` (default ``FOLDER/report.html``) atomically; returns its path.

    The folder is read and the output claimed before anything is computed, so a refusal costs nothing and
    leaves nothing behind."""
    folder = Path(folder)
    runs, what = find_runs(folder)
    path = claim_report(Path(out) if out is not None else folder / FILE_NAME, force)
    atomic_write_text(path, render(folder, runs, what, images, backends, latency, size, log))
    return path


__all__ = ["COMMAND", "FILE_NAME", "build_report", "claim_report", "render", "write_report"]
