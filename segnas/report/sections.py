"""The sections of a report, per run: what is computed for it (:func:`analyse`) and how each part is shown.

A section returns "" when the run holds nothing for it, so a run of any kind, method or age shows what it has.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import SegnasError
from ..genotype import Genotype
from . import curves
from ..cost import DEFAULT_CLASSES, ROUNDS, CostRow, cost_rows, untrained_network
from .evaluation import TrainedRun, evaluate_checkpoint
from .markup import count, details, esc, img, kv_table, note, pct, pre, table
from .rundata import Run


def _scalar(key: str, value: Any) -> str:
    """A value of a result record: mIoU in percent, floats to 4 digits."""
    if key == "miou":
        return f"{pct(value)}%"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def anchor(run: Run) -> str:
    """The id a run's section is linked by from the page's navigation."""
    return "run-" + re.sub(r"[^A-Za-z0-9_-]", "-", run.name)


def _png_of(draw: Callable[[Path], Any]) -> bytes:
    """A drawing function that writes a PNG file, as bytes (drawn in a temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="segnas-report-") as tmp:
        path = Path(tmp) / "figure.png"
        draw(path)
        return path.read_bytes()


class RunView:
    """Everything computed for one run before the page is written."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.genotypes: list[tuple[str, Genotype]] = run.genotypes()
        self.trained: TrainedRun | None = None
        self.costs: list[CostRow] = []
        self.notes: list[str] = []
        self.drawn: dict[str, bytes | None] = {}  # shared by the runs of one page

    @property
    def primary(self) -> Genotype | None:
        if self.trained is not None:
            return self.trained.genotype
        return self.genotypes[0][1] if self.genotypes else None


def drawing(genotype: Genotype, drawn: dict[str, bytes | None] | None = None) -> bytes | None:
    """The drawing of ``genotype``'s space (the one ``segnas show`` makes), as PNG bytes; None if it has none.
    ``drawn`` keeps the drawings of one page by genotype (a demo's search result is also its student run)."""
    from ..methods import method_for_space

    key = genotype.to_json()
    if drawn is not None and key in drawn:
        return drawn[key]
    try:
        draw = method_for_space(genotype.space).draw
    except SegnasError:
        return None
    png = None if draw is None else _png_of(lambda path: draw(genotype, path))
    if drawn is not None:
        drawn[key] = png
    return png


def cost_size(run: Run, trained: TrainedRun | None, size: tuple[int, int] | None) -> tuple[int, int] | None:
    """The input size a run's networks are costed at: ``size`` if given, its val images', its data's."""
    from ..data import is_procedural

    if size is not None:
        return size
    if trained is not None and trained.image_size is not None:
        return trained.image_size
    data = run.data
    candidates = [data.get("synthetic_size") if is_procedural(str(data.get("dataset", ""))) else None,
                  data.get("crop"), (run.config.get("fasterseg") or {}).get("deploy_size")]
    for c in candidates:
        if isinstance(c, list) and len(c) == 2 and all(isinstance(v, int) and v > 0 for v in c):
            return int(c[0]), int(c[1])
    return None


def analyse(run: Run, images: int, backends: Sequence[str], latency: bool, size: tuple[int, int] | None,
            log: Callable[[str], None]) -> RunView:
    """Evaluate and cost the networks of ``run``."""
    view = RunView(run)
    ckpt = run.checkpoint()
    if ckpt is not None:
        log(f"{run.name}: evaluating {ckpt.name} on {images} val images")
        try:
            view.trained = evaluate_checkpoint(ckpt, images)
        except SegnasError as e:
            view.notes.append(f"{ckpt}: {e}")
    at = cost_size(run, view.trained, size)
    if at is None:
        view.notes.append("no input size recorded for the cost table: pass --input HxW")
        return view
    if view.trained is not None:
        networks = [(run.name, view.trained.model, view.trained.genotype, True)]
    else:
        classes = (run.result or {}).get("num_classes") or run.data.get("num_classes")
        if not isinstance(classes, int) or classes < 1:
            classes = DEFAULT_CLASSES
            view.notes.append(f"the run records no class count: networks costed with {classes} classes")
        networks = []
        for label, g in view.genotypes:
            try:
                networks.append((label, untrained_network(g, classes), g, False))
            except SegnasError as e:
                view.notes.append(f"{label}.json: cannot build its network ({e})")
    if networks:
        log(f"{run.name}: cost of {', '.join(n[0] for n in networks)} at {at[0]}x{at[1]}"
            + (f" ({', '.join(backends)})" if latency else ""))
        view.costs.extend(cost_rows(networks, at, backends, latency))
    return view


def header_section(view: RunView) -> str:
    """What the run is: method, strategy, space, archids, data, when, versions, command."""
    from ..data import is_procedural

    run = view.run
    g = view.primary
    env = run.env
    data = run.data
    dataset = str(data.get("dataset", "-"))
    if isinstance(data.get("synthetic_size"), list) and is_procedural(dataset):
        dataset += f" ({'x'.join(str(v) for v in data['synthetic_size'])})"
    items = [("folder", esc(run.path)), ("kind", esc(run.kind)),
             ("method", esc(run.method or "- (a retrain)")), ("strategy", esc(run.strategy or "-")),
             ("space", esc(g.space if g else "-")),
             ("archid", esc(", ".join(f"{g.archid} ({label})" for label, g in view.genotypes) or "-")),
             ("dataset", esc(dataset)), ("when", esc(run.when)),
             ("versions", esc(f"written with torch {env.get('torch', '?')}, python {env.get('python', '?')}; "
                              f"reported with segnas {__version__}, torch {torch.__version__}")),
             ("device, threads, seed", esc(f"{env.get('device', '-')}, {env.get('threads', '-')}, "
                                           f"{env.get('seed', run.config.get('seed', '-'))}"))]
    if isinstance(env.get("argv"), list):
        items.append(("command", f"<code>{esc(' '.join(str(a) for a in env['argv']))}</code>"))
    return kv_table(items)


def result_section(view: RunView) -> str:
    """The run's final result (genotypes found, best mIoU), from result.json."""
    result = view.run.result
    if not result:
        return note("no result.json: the run has not finished (what it has logged so far is shown)")
    parts = []
    wall = result.get("wall_s")
    wall_text = f"{wall:.0f} s" if isinstance(wall, (int, float)) else "-"
    if view.run.kind == "retrain":
        final = result.get("final") if isinstance(result.get("final"), dict) else {}
        items = [(label, esc(value)) for label, value in (
            ("best val mIoU", f"{pct(result.get('best_miou'))}%"), ("final val mIoU", f"{pct(final.get('miou'))}%"),
            ("steps / epochs", f"{result.get('steps', '-')} / {result.get('epochs', '-')}"),
            ("wall time", wall_text), ("early stopped", result.get("early_stopped", "-")))]
        parts.append(kv_table(items))
    else:
        rows = []
        for name, r in view.run.final_architectures().items():
            values = ", ".join(f"{k} {_scalar(k, v)}" for k, v in r.items()
                               if k != "archid" and isinstance(v, (int, float, str)) and not isinstance(v, bool))
            rows.append([esc(name), f"<code>{esc(r.get('archid', '-'))}</code>", esc(values)])
        if rows:
            parts.append(table(["result", "archid", "at the end of the search"], rows))
        facts = [f"{result.get('method', '-')} / {result.get('strategy', '-')}", f"{wall_text} wall time"]
        if isinstance(result.get("steps"), int):
            facts.insert(1, f"{result['steps']} steps")
        if isinstance(result.get("trials"), list):
            facts.insert(1, f"{len(result['trials'])} trials ({result.get('failed', 0)} failed)")
        parts.append(f'<p class="meta">{esc("; ".join(facts))}</p>')
    return "".join(parts)


def architecture_section(view: RunView) -> str:
    """The space's drawing and text of each genotype of the run."""
    from ..spaces import get_space

    parts = []
    for label, g in view.genotypes:
        parts.append(f"<h3>{esc(label)}: {esc(g.name or g.space)} <code>{esc(g.archid)}</code></h3>")
        png = drawing(g, view.drawn)
        if png is not None:
            parts.append(img(png, f"drawing of {label} ({g.archid})"))
        try:
            parts.append(pre(get_space(g.space).describe(g)))
        except SegnasError as e:
            parts.append(note(f"cannot describe {label}: {e}"))
    return "".join(parts)


def search_section(view: RunView) -> str:
    """Search curves per epoch and per step, and a multi-trial search's rewards."""
    from .trials import draw_rewards

    run = view.run
    parts = []
    epoch_png = curves.search_epoch_chart(run.records)
    if epoch_png is not None:
        parts.append("<h3>per epoch</h3>" + img(epoch_png, "search curves per epoch"))
    trials = run.trial_records()
    if trials:
        staged = all(k in t for t in trials for k in ("stage1_reward", "reward", "reused_from", "error"))
        title = f"{run.method}, {run.strategy}: {'reward' if staged else 'trainB mIoU'} per trial"
        png = (_png_of(lambda path: draw_rewards(trials, path, title)) if staged
               else curves.trial_chart(trials, title))
        if png is not None:
            parts.append("<h3>trials</h3>" + img(png, "score per trial"))
        key = "reward" if staged else "miou"
        best = sorted((t for t in trials if isinstance(t.get(key), (int, float))), key=lambda t: -t[key])[:8]
        rows = [[esc(t["trial"]), f"<code>{esc(t.get('archid', '-'))}</code>", pct(t.get(key)),
                 esc(t.get("decision") or ("failed" if t.get("error") else "-")),
                 esc(f"{t['wall_s']:.0f}" if isinstance(t.get("wall_s"), (int, float)) else "-")] for t in best]
        if rows:
            parts.append(f"<p class=\"meta\">best {len(rows)} of {len(trials)} trials</p>"
                         + table(["trial", "archid", f"{key} %", "decision", "wall s"], rows, numeric=(0, 2, 4)))
    loss_png = curves.step_chart(run.records)
    if loss_png is not None:
        parts.append("<h3>per step</h3>" + img(loss_png, "search losses per step"))
    return "".join(parts)


def training_section(view: RunView) -> str:
    """Retrain curves: val metrics, loss and learning rate."""
    png = curves.retrain_chart(view.run.records)
    return "" if png is None else img(png, "val metrics, training loss and learning rate")


def _iou_cell(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "n/a"
    width = max(0, min(100, round(100 * value)))
    return f'<span class="bar" style="width:{width}px"></span>{100 * value:.2f}'


def iou_section(view: RunView) -> str:
    """Per-class IoU: the checkpoint's own val metrics beside those of the images scored now."""
    t = view.trained
    if t is None:
        return ""
    columns: list[tuple[str, list[Any], dict[str, Any]]] = []
    if t.best and isinstance(t.best.get("iou"), list):
        columns.append((f"val set as the run evaluated it ({t.checkpoint.name}, step {t.step})", t.best["iou"],
                        t.best))
    if t.metrics is not None:
        columns.append((f"first {t.images} val images (this report)", t.metrics["iou"], t.metrics))
    if not columns:
        return note(t.data_note) if t.data_note else ""
    rows = [[esc(name)] + [_iou_cell(c[1][k] if k < len(c[1]) else None) for c in columns]
            for k, name in enumerate(t.class_names)]
    for key, label in (("miou", "mIoU"), ("fwiou", "fwIoU"), ("pixel_acc", "pixel acc"), ("mean_acc", "mean acc")):
        rows.append([f"<b>{label}</b>"] + [_iou_cell(c[2].get(key)) for c in columns])
    out = table(["class"] + [f"IoU % on the {esc(c[0])}" for c in columns], rows,
                numeric=tuple(range(1, len(columns) + 1)))
    return out + (note(t.data_note) if t.data_note else "")


def predictions_section(view: RunView) -> str:
    """Image | ground truth | prediction panels of the images scored now."""
    t = view.trained
    if t is None or not t.panels:
        return ""
    return ('<p class="meta">image | ground truth | prediction, colourised with the dataset palette</p>'
            + "".join(img(p, f"val image {i}: image, ground truth, prediction", "pred")
                      for i, p in enumerate(t.panels)))


def _latency_cell(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "-"
    ms = entry.get("latency_ms")
    if isinstance(ms, (int, float)) and not isinstance(ms, bool):
        return f"{ms:.2f}"
    error = str(entry.get("error") or "?")
    return f'<span class="err" title="{esc(error)}">failed: {esc(error[:80])}</span>'


def cost_table(rows: list[tuple[str, CostRow]], backends: Sequence[str], latency: bool) -> str:
    """The cost rows of several runs as one table (a row's error in place of its numbers)."""
    lat_heads = [f"{esc(b)} ms" for b in backends] if latency else []
    body = []
    for run_label, r in rows:
        if r.error:
            cells = [f'<span class="err">{esc(r.error)}</span>'] + [""] * (1 + len(lat_heads))
        else:
            cells = [count(r.params), count(r.macs)] + [_latency_cell(r.latency.get(b)) for b in backends
                                                         if latency]
        body.append([run_label, esc(r.label), f"<code>{esc(r.archid)}</code>", f"{r.size[0]}x{r.size[1]}",
                     "trained" if r.trained else "seeded"] + cells)
    numeric = tuple(range(5, 7 + len(lat_heads)))
    return table(["run", "network", "archid", "input", "weights", "params", "multiply-adds"] + lat_heads,
                 body, numeric=numeric)


def cost_caption(backends: Sequence[str], latency: bool) -> str:
    """How the cost table was measured (threads, rounds, backends), for reading its numbers."""
    timing = (f"latency: batch 1 on this machine's CPU, {torch.get_num_threads()} threads, the fastest of {ROUNDS} "
              f"interleaved rounds per backend ({', '.join(backends)})" if latency and backends
              else "latency not measured (--no-latency)")
    return (f'<p class="meta">parameters without training-only auxiliary heads; multiply-adds of one inference '
            f"forward pass; {esc(timing)}</p>")


def config_section(run: Run) -> str:
    """The run's config.yaml, result.json and env.json, collapsed."""
    parts = []
    text = run.text("config.yaml")
    if text is not None:
        parts.append(details("config.yaml", pre(text)))
    if run.result:
        shown = {k: v for k, v in run.result.items() if k != "config"}
        parts.append(details("result.json (its config is config.yaml)", pre(json.dumps(shown, indent=2, default=str))))
    if run.env:
        parts.append(details("env.json", pre(json.dumps(run.env, indent=2, default=str))))
    return "".join(parts)


def run_section(view: RunView, backends: Sequence[str], latency: bool) -> str:
    """Every section of one run, in reading order."""
    run = view.run
    title = f"{run.name}: {'search' if run.kind == 'search' else 'retrain'}"
    if run.method:
        title += f" ({run.method}, {run.strategy})"
    parts = [f'<h2 id="{anchor(run)}">{esc(title)}</h2>', header_section(view), result_section(view)]
    arch = architecture_section(view)
    if arch:
        parts.append("<h3>architecture</h3>" + arch)
    body = search_section(view) if run.kind == "search" else training_section(view)
    if body:
        parts.append(f"<h3>{'search curves' if run.kind == 'search' else 'retrain curves'}</h3>" + body)
    iou = iou_section(view)
    if iou:
        parts.append("<h3>per-class IoU</h3>" + iou)
    preds = predictions_section(view)
    if preds:
        parts.append("<h3>predictions</h3>" + preds)
    if view.costs:
        parts.append("<h3>cost</h3>" + cost_caption(backends, latency)
                     + cost_table([(esc(run.name), r) for r in view.costs], backends, latency))
    config = config_section(run)
    if config:
        parts.append("<h3>configuration</h3>" + config)
    for text in run.notes + view.notes:
        parts.append(note(text))
    return "\n".join(parts)


def overview_section(views: list[RunView], backends: Sequence[str], latency: bool) -> str:
    """A folder of runs: one row per run, then the cost of every network side by side."""
    rows = []
    for v in views:
        run, result = v.run, v.run.result or {}
        if run.kind == "retrain":
            best = result.get("best_miou") if result else (v.trained.best or {}).get("miou") if v.trained else None
            score, what = pct(best), "best val mIoU %"
        else:
            finals = [r.get("miou") for r in run.final_architectures().values()]
            score, what = pct(finals[0] if finals else None), "search mIoU (trainB) %"
        g = v.primary
        rows.append([f'<a href="#{anchor(run)}">{esc(run.name)}</a>', esc(run.kind),
                     esc(f"{run.method}, {run.strategy}" if run.method else "-"),
                     f"<code>{esc(g.archid)}</code>" if g else "-", esc(g.name or "-") if g else "-",
                     score, esc(what)])
    out = table(["run", "kind", "method", "archid", "name", "score", "score is"], rows, numeric=(5,))
    costs = [(f'<a href="#{anchor(v.run)}">{esc(v.run.name)}</a>', r) for v in views for r in v.costs]
    if costs:
        out += "<h3>cost of every network</h3>" + cost_caption(backends, latency) + cost_table(costs, backends,
                                                                                                latency)
    return out


__all__ = ["RunView", "analyse", "anchor", "cost_size", "drawing", "overview_section", "run_section"]
