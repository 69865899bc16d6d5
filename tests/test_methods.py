"""The method registry, the direction of imports, per-method config sections and older run configs."""

import ast
from pathlib import Path

import pytest

from segnas.config_io import MOVED_SEARCH_KEYS

from segnas.cli import main
from segnas.config import from_dict, to_dict
from segnas.engine.session import resumed_config
from segnas.errors import ConfigError
from segnas.methods import METHODS, get_method
from segnas.strategies import STRATEGIES

PACKAGE = Path(__file__).resolve().parents[1] / "segnas"


def _imports(path: Path, text: str | None = None) -> list[str]:
    """Absolute module names ``path`` (or ``text`` as if it were that file) imports."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text() if text is None else text)):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            out.append(module)
            out += [f"{module}.{a.name}" for a in node.names]  # "from . import spaces" names a module too
    return out


def _violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        for module in _imports(path):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(PACKAGE)} imports {module}")
    return bad


def test_spaces_never_import_strategies_or_methods():
    assert _violations("spaces", ("segnas.strategies", "segnas.methods", "segnas.cli", "segnas.demo")) == []


def test_strategies_never_import_a_particular_space_or_a_method():
    assert _violations("strategies", ("segnas.spaces", "segnas.methods", "segnas.cli", "segnas.demo")) == []


def test_each_space_imports_no_other_space():
    spaces = ("fasterseg", "autodeeplab", "dcnas", "nekrasov", "dots")
    for space in spaces:
        others = tuple(f"segnas.spaces.{o}" for o in spaces if o != space)
        assert _violations(f"spaces/{space}", others) == []


def test_the_import_check_sees_a_violation():
    # the checker itself must be able to fail: relative imports from a space into the strategies
    space_file = PACKAGE / "spaces" / "fasterseg" / "search.py"
    assert "segnas.strategies.differentiable" in _imports(space_file, "from ...strategies.differentiable import x\n")
    assert "segnas.strategies" in _imports(space_file, "from ... import strategies\n")
    assert "segnas.spaces.fasterseg.lut" in _imports(space_file, "from .lut import probe\n")


def test_no_method_name_dispatch_outside_the_registry():
    pattern = ("== \"fasterseg\"", "== 'fasterseg'", "== \"autodeeplab\"", "!= \"fasterseg\"", "!= \"autodeeplab\"",
               "== \"dcnas\"", "!= \"dcnas\"")
    hits = [f"{p.relative_to(PACKAGE)}" for p in PACKAGE.rglob("*.py")
            if any(s in p.read_text() for s in pattern)]
    assert hits == []


def test_registry_lists_both_methods_and_strategies(capsys):
    assert set(METHODS) >= {"fasterseg", "autodeeplab", "dcnas"} and set(STRATEGIES) >= {"differentiable"}
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in ("fasterseg", "autodeeplab", "dcnas", "differentiable", "teacher.json, student.json", "genotype.json"):
        assert name in out
    for method in METHODS.values():
        assert method.strategies[0] in STRATEGIES and method.primary in method.outputs + ("genotype",)


def test_unknown_method_and_strategy_are_one_line_listing_the_known(capsys, tmp_path):
    assert main(["search", "nosuchmethod", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "known methods: fasterseg, autodeeplab, dcnas" in err
    assert main(["search", "fasterseg", "--strategy", "evolution", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "evolution" in err and "differentiable" in err
    with pytest.raises(ConfigError, match="known methods"):
        get_method("nope")


def test_a_key_the_chosen_method_does_not_use_is_refused_with_the_valid_keys():
    with pytest.raises(ConfigError, match=r"'autodeeplab\.genotype_args\.filter_multiplier' is unknown.*known keys here:.*fasterseg"):
        get_method("fasterseg").config("tiny", overrides=["autodeeplab.genotype_args.filter_multiplier=4"])
    with pytest.raises(ConfigError, match=r"'fasterseg\.lut' is unknown.*autodeeplab"):
        get_method("autodeeplab").config("tiny", overrides=["fasterseg.lut=t.json"])
    with pytest.raises(ConfigError, match=r"'fasterseg\.latency_lambdaa' is unknown.*latency_lambda"):
        get_method("fasterseg").config("tiny", overrides=["fasterseg.latency_lambdaa=1"])
    with pytest.raises(ConfigError, match=r"'search\.tau' is unknown \(it moved .*'fasterseg\.tau'\)"):
        get_method("fasterseg").config("tiny", overrides=["search.tau=2"])
    with pytest.raises(ConfigError, match=r"'fasterseg\.tau' is 0"):
        get_method("fasterseg").config("tiny", overrides=["fasterseg.tau=0"])


def test_method_config_round_trips_with_its_section():
    method = get_method("fasterseg")
    cfg = method.config("tiny", overrides=["fasterseg.tau=0.5"])
    data = to_dict(cfg)
    assert data["fasterseg"]["tau"] == 0.5 and "sections" not in data and data["method"] == "fasterseg"
    assert from_dict(data, method.sections("differentiable")) == cfg
    with pytest.raises(ConfigError, match="'fasterseg' is unknown"):
        from_dict(data)  # a retrain reads no method section


def _old_search_config(method: str, saved: dict | None = None) -> dict:
    """A run config (``saved``, default the tiny preset's) as searches saved it before methods had
    sections: every option under ``search``, no method or strategy recorded."""
    cfg = {k: dict(v) if isinstance(v, dict) else v
           for k, v in (saved or to_dict(get_method(method).config("tiny"))).items()}
    own = cfg.pop(method)
    for key in ("method", "strategy"):
        cfg.pop(key)
    old_fasterseg = {"ohem_thresh": 0.7, "ohem_min_kept": 16, "cosearch": True, "teacher_chi": None,
                     "sandwich_random": 1, "sandwich_search": True, "tau": 1.0, "latency_lambda": 0.01,
                     "latency_weights": [0.001, 0.997, 0.002], "target_latency_ms": None, "adaptive_lambda": False,
                     "select_exponent": -0.07, "deploy_size": [64, 64], "lut": None, "lut_repeats": 1}
    cfg["search"].update(old_fasterseg, genotype_args={})
    cfg["search"].update({k: v for k, v in own.items() if k in MOVED_SEARCH_KEYS})  # the options of those days
    return cfg


def test_older_run_configs_map_their_search_keys_once():
    fs = get_method("fasterseg")
    old = _old_search_config("fasterseg")
    old["search"]["tau"] = 0.25
    cfg = resumed_config({"config": old}, {"threads": 1}, "search", fs.sections("differentiable"))
    assert cfg.fasterseg.tau == 0.25 and cfg.fasterseg.ohem_min_kept == 16 and cfg.threads == 1
    # its genotypes were built with the attention fusion block, the only one then; its decoding is the paper's
    assert cfg.search.space_args["fusion"] == "attention" and cfg.fasterseg.path_rule == "paper"
    fresh = to_dict(fs.config("tiny"))
    assert resumed_config({"config": fresh}, None, "search", fs.sections("differentiable")).search.space_args.get(
        "fusion", "plain") == "plain"
    assert not hasattr(cfg.search, "tau")
    adl = get_method("autodeeplab")
    old = _old_search_config("autodeeplab")
    assert old["search"]["genotype_args"]["filter_multiplier"] == 4
    cfg = resumed_config({"config": old}, None, "search", adl.sections("differentiable"))
    assert cfg.autodeeplab.genotype_args["filter_multiplier"] == 4
    assert "fasterseg" not in to_dict(cfg)  # the other method's old keys are dropped, not carried
    # a retrain checkpoint of those days carried the same search keys: they are dropped
    assert resumed_config({"config": old}, None).search.arch_batches == 1


def test_options_added_later_are_filled_in_after_the_old_keys_moved(monkeypatch):
    import segnas.config_io

    # as if sandwich_arch had been added with a default other than what older runs did
    monkeypatch.setattr(segnas.config_io, "LATER_OPTIONS", {("fasterseg", "sandwich_arch"): True})
    fs = get_method("fasterseg")
    old = _old_search_config("fasterseg")
    del old["search"]["sandwich_arch"]  # saved before the option existed
    assert resumed_config({"config": old}, None, "search", fs.sections("differentiable")).fasterseg.sandwich_arch
    old["search"]["sandwich_arch"] = False  # recorded by the run: kept
    assert not resumed_config({"config": old}, None, "search", fs.sections("differentiable")).fasterseg.sandwich_arch


def test_the_command_chooses_method_strategy_and_preset_and_class_constants_are_no_keys(tmp_path):
    fs = get_method("fasterseg")
    for key in ("strategy=random", "method=autodeeplab", "preset=paper"):
        with pytest.raises(ConfigError, match=f"'{key.split('=')[0]}' is .*chosen with"):
            fs.config("tiny", overrides=[key])
    assert fs.config("tiny", overrides=["preset=tiny"]).preset == "tiny"  # repeating the command's choice is fine
    for key in ("fasterseg.RANGES=3", "fasterseg.PATHS=[1]"):
        with pytest.raises(ConfigError, match="is unknown"):
            fs.config("tiny", overrides=[key])


def test_a_session_that_cannot_start_leaves_the_thread_count_as_it_was(tmp_path):
    import torch

    from segnas.config import make_config
    from segnas.engine.session import RunSession

    before = torch.get_num_threads()
    cfg = make_config("tiny", overrides=["device=cuda:7", f"threads={max(1, before - 1) if before > 1 else 2}"])
    with pytest.raises(ConfigError, match="cuda:7"):
        with RunSession(tmp_path / "r", cfg):
            pass
    assert torch.get_num_threads() == before


def test_a_run_folder_saved_before_method_sections_resumes_to_the_same_genotype(tmp_path):
    import torch
    import yaml

    from segnas.engine.checkpoint import atomic_save

    adl = get_method("autodeeplab")
    small = ["search.space_args.layers=3", "search.space_args.blocks=1",
             "search.space_args.ops=[sep_conv_3x3,skip_connect,none]"]
    cfg = adl.config("tiny", overrides=small, extra={"data": {"dataset": "synthetic"}})
    adl.search(cfg, tmp_path / "full", progress=False)
    run = tmp_path / "old"
    assert adl.search(cfg, run, stop_after=3, progress=False)["interrupted"]  # a checkpoint after epoch 1
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    old = _old_search_config("autodeeplab", ckpt["config"])
    assert "autodeeplab" not in old and old["search"]["genotype_args"]["filter_multiplier"] == 4
    ckpt["config"] = old
    atomic_save(ckpt, run / "checkpoints" / "last.pt")
    (run / "config.yaml").write_text(yaml.safe_dump(old))
    assert main(["search", "autodeeplab", "--out", str(run), "--resume", "--quiet"]) == 0
    assert (run / "genotype.json").read_text() == (tmp_path / "full" / "genotype.json").read_text()


def test_each_method_states_the_planted_property_of_planted_context():
    from segnas import zoo
    from segnas.spaces import get_space

    fs, adl = get_method("fasterseg"), get_method("autodeeplab")
    assert fs.has_planted("planted-context", zoo.get("fasterseg"))  # its branches end at 1/32 and 1/16
    fine = zoo.get("fasterseg").structure["branches"][1]["cells"]  # the 1/16 branch alone
    assert not fs.has_planted("planted-context", get_space("fasterseg").make_genotype(
        {"branches": [{"cells": fine}]}, zoo.get("fasterseg").space_args))
    assert adl.has_planted("planted-context", zoo.get("autodeeplab-s"))  # its path reaches 1/32 at layer 9
    g = zoo.get("autodeeplab-s")
    low = get_space("autodeeplab").make_genotype(dict(g.structure, path=[0, 0, 1, 1, 2, 2, 1, 1, 0, 0, 1, 2]),
                                                 g.space_args)
    assert not adl.has_planted("planted-context", low)
    with pytest.raises(ConfigError, match="no planted property"):
        fs.has_planted("synthetic", zoo.get("fasterseg"))


def test_planted_search_settings_make_a_valid_config_for_every_method_and_strategy():
    from segnas import planted

    for method in METHODS.values():
        for strategy in method.strategies:
            for scenes in (planted.BENCH, planted.DEMO):
                cfg = method.config("cpu", overrides=planted.search_overrides(method, strategy, scenes),
                                    strategy=strategy)
                assert cfg.data.dataset == planted.DATASET and list(cfg.data.crop) == list(scenes.size)


def test_a_search_report_names_each_architecture_its_files_and_the_retrain_command(tmp_path):
    searched = {"final": {"architectures": {"genotype": {"archid": "abc", "path": [0, 1, 2]}}}}
    lines = get_method("autodeeplab").report(searched, tmp_path)
    assert lines[0] == f"genotype: abc path 4 8 16 -> {tmp_path / 'genotype.json'} (drawing {tmp_path / 'genotype.png'})"
    assert lines[-1] == f"next: segnas retrain {tmp_path / 'genotype.json'} --out {tmp_path}-retrain"
    dense = {"final": {"architectures": {"genotype": {"archid": "abc", "nodes": 6, "connections": 9}}}}
    assert get_method("dcnas").report(dense, tmp_path)[0].startswith("genotype: abc 6 nodes, 9 connections -> ")
    trial = {"final": {"architectures": {"genotype": {"archid": "def", "trial": 3, "miou": 0.5}}}}
    assert get_method("dcnas").report(trial, tmp_path)[0].startswith("genotype: def trial 3, search mIoU 50.0% -> ")


def test_one_shot_epoch_lines_describe_the_architecture_then_the_supernet_score():
    dcnas, adl = get_method("dcnas"), get_method("autodeeplab")
    assert dcnas.epoch_line({"nodes": 9, "connections": 14}) == "9 nodes, 14 connections"
    assert (dcnas.epoch_line({"nodes": 9, "connections": 14, "miou": 0.4567})
            == "9 nodes, 14 connections | supernet mIoU(trainB) 45.7")
    assert adl.epoch_line({"path": [0, 1, 1], "miou": 0.1}) == "path 4 8 8 | supernet mIoU(trainB) 10.0"
