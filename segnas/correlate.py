"""``segnas correlate``: does a one-shot search's supernet rank architectures as retraining them does?

For a set of architectures, the *search-time score* of each (the supernet of a
finished search with that architecture fixed, its mIoU on trainB, the images
the search scores architectures on) is set against its *retrained val mIoU*
(the child network trained from scratch by one recipe). The DCNAS supplement
(Table 2) reports this for DCNAS (Pearson rho 0.73, Kendall tau 0.55) and for
Auto-DeepLab's supernet (0.34 / 0.24), over architectures sampled along and
around the search; this command does the same for every one-shot method:

* *along*: the genotypes the search decoded at its epochs (``genotypes/``),
  one entry per distinct architecture;
* *around*: neighbours of the final genotype, each with one or two of its
  integer choices (``space.encode``) changed; invalid ones are skipped, as are
  duplicates and architectures the supernet cannot compute;
* *file*: genotype files given on the command line.

Each architecture is retrained in ``OUT/retrain/<archid>/`` (a normal retrain
run folder): rerunning the command continues where it stopped, reuses every
finished retrain and refuses a folder trained by another recipe. The
statistics are Pearson's r and Kendall's tau-b (scipy.stats) with seeded
percentile-bootstrap intervals over the architectures.
"""

from __future__ import annotations

import copy
import json
import math
import platform
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader
from tqdm import tqdm

from .config import RunConfig, anchored, to_dict, with_overrides
from .config_io import parse_overrides
from .data import EvalTransform, build_dataset
from .data.splits import load_splits, make_splits
from .engine.checkpoint import load_checkpoint
from .engine.loaders import data_root, dataset_kwargs
from .engine.rundir import write_json
from .engine.session import resolve_device, resumed_config
from .errors import CheckpointError, ConfigError, DataError, GenotypeError, SegnasError
from .genotype import Genotype
from .genotype import load as load_genotype
from .methods import Method, get_method
from .spaces import get_space
from .strategies import WRAPS
from .strategies.halves import SearchData
from .threads import torch_threads

MARKER = "segnas_correlate"  # in correlation.json: this folder's outputs were written by this command
DEFAULT_RESAMPLES = 2000
CONFIDENCE = 0.9


@dataclass
class Architecture:
    """One architecture of the correlation: where it came from, its two numbers."""

    genotype: Genotype
    source: str  # along | around | file
    where: str  # epochs, the file, or which choices were changed
    final: bool = False  # the search's final genotype
    search_score: float | None = None
    retrained: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        r = self.retrained or {}
        return {"archid": self.genotype.archid, "source": self.source, "where": self.where, "final": self.final,
                "search_score": self.search_score, "retrained_miou": r.get("miou"),
                "retrained_best_miou": r.get("best_miou"), "retrain_dir": r.get("run_dir"), "notes": self.notes}


@dataclass
class SearchRun:
    """A finished one-shot search, its supernet loaded back."""

    path: Path
    method: Method
    strategy: str
    cfg: RunConfig
    problem: Any
    plain: Any  # the training split without augmentation (trainB is scored from it)
    step: int
    epochs: int


# -- the search run and its supernet ----------------------------------------------------------------

def load_search_run(path: Path, device: str | None = None) -> SearchRun:
    """The run's config and its supernet problem with the checkpoint's weights and architecture parameters,
    on ``device`` (default: the run's own).

    Refuses, in one line, a folder that is no finished search of a method with a supernet.
    """
    if not (path / "checkpoints" / "last.pt").is_file() or not (path / "config.yaml").is_file():
        raise ConfigError(f"{path}: not a search run folder (no config.yaml and checkpoints/last.pt); give the "
                          "--out folder of a finished 'segnas search'")
    try:
        ckpt = load_checkpoint(path / "checkpoints" / "last.pt", required=("search", "config", "method"))
    except CheckpointError as e:
        raise ConfigError(f"{e} (correlate needs the folder of a finished 'segnas search')") from None
    method = get_method(str(ckpt["method"]))
    strategy = ckpt["config"].get("strategy") or "differentiable"
    if method.problem is None:
        raise ConfigError(f"{path}: method {method.name} has no supernet; correlate compares a one-shot search's "
                          "supernet scores with retraining")
    if not (path / "result.json").is_file():
        raise ConfigError(f"{path}: the search has not finished (no result.json); finish it with 'segnas search "
                          f"{method.name} --out {path} --resume' first")
    cfg = resumed_config(ckpt, None, "search", method.sections(strategy))
    num_classes = int(ckpt.get("num_classes") or 0)
    if num_classes < 1 or not isinstance(ckpt["search"], dict) or "net" not in ckpt["search"]:
        raise ConfigError(f"{path}: its checkpoint holds no supernet (a {strategy} search); correlate needs a "
                          "one-shot search")
    where = resolve_device(device or cfg.device)
    plain = build_dataset(cfg.data.dataset, data_root(cfg.data), cfg.data.train_split, transform=EvalTransform(),
                          seed=cfg.seed, cache=cfg.data.cache, **dataset_kwargs(cfg.data, cfg.data.train_split))
    if method.reload is not None:
        problem = method.reload(cfg, path, num_classes, plain.ignore_index, where)
    else:
        problem = method.problem(cfg, SearchData(None, None, None, num_classes, plain.ignore_index), path, where,
                                 False)
    if strategy in WRAPS:  # the strategy's own parameters live in the same supernet
        problem = WRAPS[strategy](problem, cfg)
    try:
        problem.load_state_dict(ckpt["search"])
    except (RuntimeError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{path}: its checkpoint does not fit this {method.name} supernet ({first}); it was "
                          "written by another segnas version or layout") from None
    return SearchRun(path, method, strategy, cfg, problem, plain, int(ckpt.get("step", 0)),
                     int(ckpt.get("epochs_done", 0)))


def trainb_loader(run: SearchRun, limit: int | None) -> tuple[DataLoader, int]:
    """trainB of the run's recorded split (its ``splits.json``), without augmentation, ``limit`` images at most:
    the half the search fitted architecture parameters on and scored architectures with, never the weights."""
    path = run.path / "splits.json"
    if path.is_file():
        splits, meta = load_splits(path)
        if meta.get("num_items") not in (None, len(run.plain)):
            raise DataError(f"{path}: the split is of {meta['num_items']} images, the run's data now has "
                            f"{len(run.plain)}; correlate needs the data the search ran on")
    else:
        splits = make_splits(len(run.plain), run.cfg.seed, 0.0, 0.5)
    if limit is not None and limit < 1:
        raise ConfigError(f"--score-images must be at least 1, got {limit}")
    images = splits["trainB"][:limit] if limit else splits["trainB"]
    return DataLoader(run.plain.subset(images), batch_size=1, shuffle=False), len(images)


# -- which architectures ---------------------------------------------------------------------------

_EPOCH_FILE = re.compile(r"epoch(\d+)_(.+)\.json$")


def along(run: SearchRun) -> list[Architecture]:
    """The primary architecture the search decoded at each epoch, one entry per archid (its epochs listed),
    the final genotype marked."""
    files = []
    for path in (run.path / "genotypes").glob(f"epoch*_{run.method.primary}.json"):
        m = _EPOCH_FILE.search(path.name)
        if m and m.group(2) == run.method.primary:
            files.append((int(m.group(1)), path))
    final_path = run.path / f"{run.method.primary}.json"
    if not files or not final_path.is_file():
        raise ConfigError(f"{run.path}: no decoded genotypes (genotypes/epoch*_{run.method.primary}.json and "
                          f"{final_path.name}); correlate needs a finished one-shot search")
    final = load_genotype(final_path)
    out: dict[str, Architecture] = {}
    epochs: dict[str, list[int]] = {}
    for epoch, path in sorted(files):
        g = load_genotype(path)
        out.setdefault(g.archid, Architecture(g, "along", ""))
        epochs.setdefault(g.archid, []).append(epoch)
    if final.archid not in out:  # cannot happen for a run written by segnas; keep it anyway
        out[final.archid] = Architecture(final, "along", "")
        epochs[final.archid] = []
    for archid, arch in out.items():
        arch.where = "epoch" + ("s " if len(epochs[archid]) > 1 else " ") + ", ".join(map(str, epochs[archid]))
        arch.final = archid == final.archid
    return list(out.values())


def neighbours(genotype: Genotype, n: int, rng: np.random.Generator,
               usable: Callable[[Genotype], bool] = lambda g: True, exclude: Sequence[str] = (),
               tries_per_neighbour: int = 200) -> list[tuple[Genotype, str]]:
    """Up to ``n`` distinct architectures, each ``genotype`` with one or two random integer choices changed.

    Changes go through ``space.decode``, so a neighbour is a valid architecture of the same space
    arguments; invalid ones, duplicates (by archid, also of ``exclude``), ``genotype`` itself and those
    ``usable`` refuses are skipped. Returns (neighbour, which choices changed). Variable-length
    encodings (FasterSeg) draw a new value below the largest decision size; ``decode`` refuses the
    values out of their decision's range.
    """
    if n < 0:
        raise ConfigError(f"--around must be 0 or more, got {n}")
    space = get_space(genotype.space)
    spec = space.choice_spec(genotype.space_args)
    base = list(genotype.choices)
    fixed_length = len(spec) == len(base)
    widest = max(d.size for d in spec)
    seen = {genotype.archid, *exclude}
    out: list[tuple[Genotype, str]] = []
    for _ in range(tries_per_neighbour * n):
        if len(out) >= n:
            break
        choices = list(base)
        changed = []
        for pos in sorted(rng.choice(len(base), size=min(int(rng.integers(1, 3)), len(base)), replace=False)):
            size = spec[pos].size if fixed_length else widest
            if size < 2:
                continue
            new = int(rng.integers(0, size - 1))
            new += new >= choices[pos]  # any value but the current one
            changed.append(f"choices[{pos}] {choices[pos]}->{new}")
            choices[pos] = new
        if not changed:
            continue
        try:
            g = space.decode(choices, genotype.space_args, name=f"{genotype.name or genotype.space}-around",
                             meta={"source": "segnas correlate: a neighbour", "of": genotype.archid,
                                   "changed": changed})
        except GenotypeError:
            continue
        if g.archid in seen or not usable(g):
            continue
        seen.add(g.archid)
        out.append((g, ", ".join(changed)))
    return out


def check_representable(problem: Any, genotype: Genotype, where: str) -> None:
    """A GenotypeError naming ``where`` (a file) and the mismatch if the supernet cannot fix ``genotype``."""
    try:
        with problem.fixed(genotype):
            pass
    except GenotypeError as e:
        raise GenotypeError(f"{where}: {e}") from None


def representable(problem: Any, genotype: Genotype) -> bool:
    """Whether the supernet can fix ``genotype`` (``problem.fixed`` accepts it)."""
    try:
        check_representable(problem, genotype, "")
    except GenotypeError:
        return False
    return True


def read_genotype(arg: str) -> Genotype:
    """A genotype file, or the name of a zoo entry."""
    from . import zoo

    path = Path(arg)
    if not path.exists() and "/" not in arg and arg in zoo.list():
        return zoo.get(arg)
    return load_genotype(path)


# -- the two numbers --------------------------------------------------------------------------------

def search_score(problem: Any, genotype: Genotype, loader: DataLoader) -> tuple[float, list[str]]:
    """(mIoU of the supernet with ``genotype`` fixed on ``loader``'s images, where that differs from the child)."""
    with problem.fixed(genotype) as notes:
        return float(problem.supernet_miou(loader)), list(notes)


def retrain_config(run_cfg: RunConfig, overrides: Sequence[str], device: str | None,
                   threads: int | None) -> RunConfig:
    """The one recipe every architecture is retrained by: the search's data, seed and preset retrain
    section at a quarter of its epochs (ranks, not final accuracy, are asked for), then ``--set train.*``."""
    for key in parse_overrides(list(overrides)):
        if key != "train":
            raise ConfigError(f"--set {key}...: correlate retrains on the search's data with its seed; only "
                              "train.* keys may change (e.g. --set train.epochs=20)")
    cfg = RunConfig(data=copy.deepcopy(run_cfg.data), train=copy.deepcopy(run_cfg.train), seed=run_cfg.seed,
                    device=device or run_cfg.device, threads=threads if threads is not None else run_cfg.threads,
                    preset=run_cfg.preset)
    cfg.train.epochs = max(1, cfg.train.epochs // 4)
    return with_overrides(cfg, list(overrides))


def _recipe(cfg: RunConfig) -> dict[str, Any]:
    saved = to_dict(anchored(cfg))
    return {"data": saved["data"], "train": saved["train"], "seed": saved["seed"]}


def retrained_miou(genotype: Genotype, cfg: RunConfig, folder: Path, progress: bool) -> tuple[dict[str, Any], bool]:
    """(val mIoU of ``genotype`` retrained by ``cfg`` in ``folder``, whether any training ran now).

    A finished run there is reused, a started one continued; one trained by another recipe is refused.
    """
    from .engine import retrain

    resume = (folder / "checkpoints" / "last.pt").is_file()
    overrides = None
    if resume:
        try:
            config = yaml.safe_load((folder / "config.yaml").read_text())
        except (OSError, yaml.YAMLError):
            config = None
        if not isinstance(config, dict):
            raise ConfigError(f"{folder}: holds a checkpoint but no readable config.yaml; delete the folder to "
                              "retrain that architecture")
        saved = {"data": config.get("data"), "train": config.get("train"), "seed": config.get("seed")}
        want = _recipe(cfg)
        if saved != want:
            diff = _first_difference(saved, want)
            raise ConfigError(f"{folder}: retrained by another recipe ({diff}); use another --out, or give the "
                              "--set train.* of the earlier command")
        overrides = {k: v for k, v in (("device", cfg.device), ("threads", cfg.threads)) if v is not None}
    result = retrain(genotype, cfg, folder, resume=resume, progress=progress, resume_overrides=overrides)
    if result.get("interrupted"):
        raise SegnasError(f"{folder}: the retrain stopped at step {result.get('step')}; rerun the same "
                          "'segnas correlate' to continue it")
    return {"miou": float(result["final"]["miou"]), "best_miou": float(result["best_miou"]),
            "run_dir": str(folder), "steps": int(result["steps"])}, not result.get("already_complete", False)


def _first_difference(a: Any, b: Any, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
    return f"{prefix.rstrip('.')} {a!r} there, {b!r} now"


# -- statistics -------------------------------------------------------------------------------------

def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r (scipy.stats); NaN where either side is constant (no correlation is defined)."""
    from scipy import stats

    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(stats.pearsonr(x, y)[0])


def _kendall(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b (scipy.stats: tied pairs count as such); NaN where either side is constant."""
    from scipy import stats

    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(stats.kendalltau(x, y)[0])


def pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson's r of every row pair of (R, n) arrays at once (the bootstrap's thousands of resamples;
    scipy's per-call overhead would take seconds); NaN for rows with a constant side."""
    dx, dy = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    den = np.sqrt((dx * dx).sum(1) * (dy * dy).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (dx * dy).sum(1) / den
    r[(np.ptp(x, 1) == 0) | (np.ptp(y, 1) == 0)] = math.nan
    return np.clip(r, -1.0, 1.0)


def kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of every row pair of (R, n) arrays at once: sum over pairs i < j of
    sign(dx) sign(dy), over sqrt(pairs untied in x * pairs untied in y), as scipy's ``kendalltau``."""
    i, j = np.triu_indices(x.shape[1], 1)
    sx, sy = np.sign(x[:, i] - x[:, j]), np.sign(y[:, i] - y[:, j])
    den = np.sqrt((sx * sx).sum(1) * (sy * sy).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = (sx * sy).sum(1) / den
    tau[den == 0] = math.nan
    return tau


STATISTICS: dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], Callable[..., np.ndarray]]] = {
    "pearson": (_pearson, pearson_rows), "kendall": (_kendall, kendall_rows)}


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def rank_correlation(x: Sequence[float], y: Sequence[float], resamples: int = DEFAULT_RESAMPLES,
                     confidence: float = CONFIDENCE, seed: int = 0) -> dict[str, Any]:
    """Pearson's r and Kendall's tau of (x, y) with percentile bootstrap intervals.

    The bootstrap resamples the architectures (pairs) with replacement, ``resamples`` times from a
    generator seeded by ``seed``, both statistics on the same resamples; resamples where a statistic is
    undefined (one side constant) are left out and counted. Fewer than 3 architectures is refused:
    with 2, every ranking correlates perfectly.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(x)
    if n != len(y):
        raise ValueError(f"{n} scores against {len(y)} mIoUs")
    if n < 3:
        raise ConfigError(f"{n} architecture(s) with both numbers; a correlation needs at least 3 (add "
                          "--around N or genotype files)")
    if resamples < 1:
        raise ConfigError(f"--resamples must be at least 1, got {resamples}")
    index = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    tail = 100 * (1 - confidence) / 2
    out: dict[str, Any] = {"n": n, "confidence": confidence, "resamples": resamples, "seed": seed}
    for name, (stat, rows) in STATISTICS.items():
        boot = rows(x[index], y[index])
        boot = boot[np.isfinite(boot)]
        lo, hi = (np.percentile(boot, [tail, 100 - tail]) if len(boot) else (math.nan, math.nan))
        out[name] = {"value": _finite(stat(x, y)), "interval": [_finite(lo), _finite(hi)],
                     "valid_resamples": len(boot)}
    return out


# -- the command ------------------------------------------------------------------------------------

def check_out(out: Path, run: Path | None = None) -> None:
    """``--out`` may be new, or a folder this command wrote for the same search run (rerunning continues
    there); it never overwrites a correlation.json or correlation.png it did not write, nor another run's."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; choose another --out")
    path = out / "correlation.json"
    ours, before = False, {}
    if path.is_file():
        try:
            before = json.loads(path.read_text())
            ours = bool(before.get(MARKER))
        except (OSError, ValueError, AttributeError):
            ours = False
    if ours and run is not None:
        earlier = (before.get("settings") or {}).get("run")
        if earlier and Path(earlier) != run.resolve():
            raise ConfigError(f"{out}: holds the correlation of another search run ({earlier}); choose another "
                              "--out")
    foreign = [name for name in ("correlation.json", "correlation.png") if (out / name).exists() and not ours]
    if foreign:
        raise ConfigError(f"{out}: already holds {', '.join(foreign)} not written by 'segnas correlate'; "
                          "choose another --out")


def _versions() -> dict[str, str]:
    import scipy

    from . import __version__

    return {"segnas": __version__, "torch": torch.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "python": platform.python_version()}


def _write(out: Path, archs: list[Architecture], settings: dict[str, Any], stats: dict[str, Any] | None,
           complete: bool) -> dict[str, Any]:
    result = {MARKER: 1, "complete": complete, "settings": settings, "statistics": stats,
              "architectures": [a.record() for a in archs], "versions": _versions()}
    write_json(out / "correlation.json", result)
    return result


def correlate(sources: Sequence[str], out: str | Path, around: int = 4, seed: int = 0,
              overrides: Sequence[str] = (), score_images: int | None = None, resamples: int = DEFAULT_RESAMPLES,
              device: str | None = None, threads: int | None = None, progress: bool = True,
              echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Score, retrain and correlate the architectures of one search run (see the module docstring).

    ``sources``: one search run folder and any genotype files. Writes ``correlation.json`` (after the
    scores, after every retrain, and at the end with the statistics) and ``correlation.png`` to ``out``.
    """
    out = Path(out)
    runs = [Path(s) for s in sources if Path(s).is_dir()]
    files = [s for s in sources if not Path(s).is_dir()]
    if len(runs) != 1:
        raise ConfigError("give one search run folder (its supernet scores every architecture; two supernets' "
                          f"scores do not compare), got {len(runs)}: {', '.join(map(str, runs)) or 'none'}")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    if resamples < 1:
        raise ConfigError(f"--resamples must be at least 1, got {resamples}")
    if around < 0:
        raise ConfigError(f"--around must be 0 or more, got {around}")
    check_out(out, runs[0])
    with torch_threads(threads):
        return _correlate(runs[0], files, out, around, seed, overrides, score_images, resamples, device, threads,
                          progress, echo)


def _correlate(run_path: Path, files: Sequence[str], out: Path, around: int, seed: int, overrides: Sequence[str],
               score_images: int | None, resamples: int, device: str | None, threads: int | None, progress: bool,
               echo: Callable[[str], None]) -> dict[str, Any]:
    run = load_search_run(run_path, device)
    recipe = retrain_config(run.cfg, overrides, device, threads)
    archs = along(run)
    final = next(a.genotype for a in archs if a.final)
    for arch in archs:
        check_representable(run.problem, arch.genotype, f"{run.path} ({arch.where})")
    for arg in files:
        g = read_genotype(arg)
        check_representable(run.problem, g, arg)
        if g.archid not in {a.genotype.archid for a in archs}:
            archs.append(Architecture(g, "file", arg))
    rng = np.random.default_rng(seed)
    for g, changed in neighbours(final, around, rng, lambda g: representable(run.problem, g),
                                 exclude=[a.genotype.archid for a in archs]):
        archs.append(Architecture(g, "around", changed))
    found = sum(a.source == "around" for a in archs)
    if found < around:
        echo(f"found {found} of {around} neighbours of the final genotype the supernet can compute")
    if len(archs) < 3:
        raise ConfigError(f"{len(archs)} distinct architecture(s) ({found} around, the others along the search and "
                          "from files); a correlation needs at least 3: raise --around or add genotype files")
    loader, n_images = trainb_loader(run, score_images)
    settings = {"run": str(run.path.resolve()), "method": run.method.name, "strategy": run.strategy,
                "search_step": run.step, "search_epochs": run.epochs, "primary": run.method.primary,
                "final_archid": final.archid, "around": around, "seed": seed, "score": "supernet mIoU on trainB, "
                "architecture fixed", "score_images": n_images, "recipe": _recipe(recipe)["train"],
                "data": run.cfg.data.dataset, "overrides": list(overrides), "resamples": resamples,
                "confidence": CONFIDENCE}
    for arch in tqdm(archs, desc="supernet scores", unit="arch", disable=not progress, dynamic_ncols=True):
        arch.search_score, arch.notes = search_score(run.problem, arch.genotype, loader)
    _write(out, archs, settings, None, False)
    trained_now = 0
    for i, arch in enumerate(archs):
        if progress:
            tqdm.write(f"retrain {i + 1}/{len(archs)}: {arch.genotype.archid} ({arch.source}, {arch.where})")
        arch.retrained, now = retrained_miou(arch.genotype, recipe, out / "retrain" / arch.genotype.archid,
                                             progress)
        trained_now += now
        _write(out, archs, settings, None, False)
    stats = rank_correlation([a.search_score for a in archs], [a.retrained["miou"] for a in archs], resamples,
                             CONFIDENCE, seed)
    result = _write(out, archs, settings, stats, True)
    from .report.correlation import draw_correlation

    draw_correlation(result, out / "correlation.png")
    result["retrained_now"] = trained_now
    return result


def summary_lines(result: dict[str, Any], out: Path) -> list[str]:
    """The table of architectures and the two statistics, as printed after a correlation."""
    lines = [f"{'archid':<18}{'source':<8}{'search mIoU':>12}{'retrained':>11}  where"]
    for a in sorted(result["architectures"], key=lambda a: -(a["search_score"] or 0.0)):
        mark = " (final)" if a["final"] else ""
        lines.append(f"{a['archid']:<18}{a['source']:<8}{100 * a['search_score']:>11.2f}%"
                     f"{100 * a['retrained_miou']:>10.2f}%  {a['where']}{mark}")
    stats = result["statistics"]
    ci = round(100 * stats["confidence"])
    for name, label in (("pearson", "Pearson rho"), ("kendall", "Kendall tau")):
        s = stats[name]
        if s["value"] is None:
            lines.append(f"{label}: undefined (the search scores or the retrained mIoUs are all equal)")
        else:
            lo, hi = s["interval"]
            interval = f"{ci}% bootstrap interval [{lo:.2f}, {hi:.2f}]" if lo is not None else "no interval"
            lines.append(f"{label} {s['value']:.2f}  ({interval}, n = {stats['n']})")
    archs = result["architectures"]
    common = [n for n in archs[0]["notes"] if all(n in a["notes"] for a in archs)]
    more = sum(len(a["notes"]) - len(common) for a in archs)
    if common or more:
        lines.append("the supernet with an architecture fixed still computes otherwise than the child network: "
                     + "; ".join(common) + (f"{'; ' if common else ''}{more} more note(s) on single architectures "
                                            "in correlation.json" if more else ""))
    if result.get("retrained_now") is not None:
        lines.append(f"{result['retrained_now']} of {len(archs)} architectures retrained now, the others reused")
    lines.append(f"-> {out / 'correlation.json'}, {out / 'correlation.png'}, retrains in {out / 'retrain'}")
    return lines


__all__ = ["Architecture", "SearchRun", "along", "check_out", "correlate", "load_search_run", "neighbours",
           "rank_correlation", "representable", "retrain_config", "retrained_miou", "search_score",
           "summary_lines", "trainb_loader"]
