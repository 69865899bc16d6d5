"""Property-based fuzzing of everything segnas parses from users: genotypes, configs, choice vectors.

Whatever the input, the outcome is a parsed value or a SegnasError subclass (one line for the CLI), never
another exception. Derandomized, so CI sees the same examples every run; ``SEGNAS_FUZZ_EXAMPLES=2000`` fuzzes deeper locally.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segnas import zoo
from segnas.config import RunConfig, make_config
from segnas.config_io import parse_overrides
from segnas.errors import ConfigError, GenotypeError, SegnasError
from segnas.genotype import Genotype, load
from segnas.spaces import SPACES, get_space
from segnas.spaces.nekrasov import parse_paper

EXAMPLES = int(os.environ.get("SEGNAS_FUZZ_EXAMPLES", "60"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(SETTINGS, max_examples=max(1, EXAMPLES // 2))

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-3, 40),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=5)),
                           max_leaves=20)


def one_line(error: BaseException) -> None:
    text = str(error)
    assert text and "\n" not in text.strip() and "Traceback" not in text, text


# -- genotypes ------------------------------------------------------------------------------------------------

def parse_genotype(data) -> Genotype | None:
    """Parse and validate in memory, as ``load`` does after reading the file."""
    try:
        g = Genotype.from_dict(data, source="g.json")
        get_space(g.space, source="g.json").validate(g, source="g.json")
        return g
    except GenotypeError as e:
        one_line(e)
        return None


@SETTINGS
@given(data=json_values)
def test_any_json_value_is_a_genotype_or_a_genotype_error(data):
    parse_genotype(data)


def paths(value, prefix=()):
    """Every (path, value) inside a JSON value, the root included."""
    yield prefix, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        yield from paths(v, prefix + (k,))


def replace(value, path, new):
    if not path:
        return new
    out = copy.copy(value)
    out[path[0]] = replace(value[path[0]], path[1:], new)
    return out


ZOO = {name: zoo.get(name).to_dict() for name in zoo.list()}


@SETTINGS
@given(name=st.sampled_from(sorted(ZOO)), pick=st.integers(0, 10**6), new=json_values, drop_archid=st.booleans())
def test_mutated_zoo_genotypes_are_valid_or_refused_in_one_line(name, pick, new, drop_archid):
    d = copy.deepcopy(ZOO[name])
    if drop_archid:
        d.pop("archid")
    spots = list(paths(d))
    path, _ = spots[pick % len(spots)]
    parse_genotype(replace(d, path, new))


@SETTINGS
@given(name=st.sampled_from(sorted(ZOO)), pick=st.integers(0, 10**6), delta=st.sampled_from([-1, 1, 2, 10**30]))
def test_nudged_numbers_of_zoo_genotypes(name, pick, delta):
    """Every integer of a genotype moved a little (or absurdly): valid or one line, never a crash."""
    d = copy.deepcopy(ZOO[name])
    d.pop("archid")
    ints = [(p, v) for p, v in paths(d) if type(v) is int and p]
    path, value = ints[pick % len(ints)]
    parse_genotype(replace(d, path, value + delta))


@FEW
@given(text=st.one_of(st.text(max_size=60), st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
                      json_values.map(json.dumps)))
def test_genotype_files_of_any_text(text):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "g.json"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load(path)
        except GenotypeError as e:
            one_line(e)


# -- configs ----------------------------------------------------------------------------------------------------

KEYS = ["train.lr", "train.epochs", "train.batch_size", "data.crop", "data.scale_range", "data.num_classes",
        "seed", "search.space_args.layers", "search.space_args", "train", "data.check", "train.ema_decay",
        "data.synthetic_size", "threads", "train.optimizer", "nope", "train.nope.deeper", "", "."]
VALUES = ["0.1", "1e999", "-1", "[1, 2]", "[100000,100000]", "null", "true", ".nan", "-.inf", "{a: 1}",
          "99999999999999999999999999", "[[[[[[", "'quoted'", "!!python/none", "a: [", "0x1F", "~", "1_000"]


@SETTINGS
@given(items=st.lists(st.one_of(st.tuples(st.sampled_from(KEYS), st.sampled_from(VALUES)).map("=".join),
                                st.tuples(st.sampled_from(KEYS), st.text(max_size=20)).map("=".join),
                                st.text(max_size=30)), max_size=4))
def test_set_overrides_give_a_config_or_a_config_error(items):
    try:
        parse_overrides(items)
        cfg = make_config("tiny", overrides=items)
    except ConfigError as e:
        one_line(e)
        return
    assert isinstance(cfg, RunConfig)


yaml_docs = st.one_of(
    st.text(max_size=80),
    st.dictionaries(st.sampled_from(["train", "data", "search", "seed", "nope", "device"]),
                    st.one_of(json_values, st.dictionaries(st.sampled_from(["lr", "epochs", "crop", "check",
                                                                            "space_args", "x"]), json_values,
                                                           max_size=3)),
                    max_size=3).map(lambda d: yaml.safe_dump(d)),
)


@SETTINGS
@given(doc=yaml_docs)
def test_yaml_documents_give_a_config_or_a_config_error(doc):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.yaml"
        path.write_text(doc, encoding="utf-8", errors="surrogatepass")
        try:
            cfg = make_config("tiny", path)
        except ConfigError as e:
            one_line(e)
            return
    assert isinstance(cfg, RunConfig)


# -- the spaces' encodings ----------------------------------------------------------------------------------------

SMALL_ARGS = {"fasterseg": {"layers": 5, "chis": [2, 3, 4], "head_chi": 4}, "autodeeplab": {"layers": 5, "blocks": 3},
              "dcnas": {"layers": 4}, "dots": {"layers": 6, "nodes": 3}, "nekrasov": {}}


@pytest.mark.parametrize("name", sorted(SPACES))
def test_small_args_cover_every_space(name):
    assert name in SMALL_ARGS


@SETTINGS
@given(name=st.sampled_from(sorted(SPACES)), seed=st.integers(0, 2**32 - 1))
def test_sampled_choice_vectors_round_trip(name, seed):
    space = get_space(name)
    args = space.resolve_args(SMALL_ARGS[name])
    g = space.sample(np.random.default_rng(seed), args)
    d = space.decode(g.choices, args)
    assert d.archid == g.archid and d.choices == g.choices
    assert space.encode(d.structure, args) == g.choices
    assert len(g.choices) <= len(space.choice_spec(args))  # a variable-length space lists its longest sequence


@SETTINGS
@given(name=st.sampled_from(sorted(SPACES)), seed=st.integers(0, 2**32 - 1), pick=st.integers(0, 10**6),
       beyond=st.sampled_from([0, 1, 7, 10**30]), negative=st.booleans())
def test_out_of_range_choices_are_genotype_errors(name, seed, pick, beyond, negative):
    space = get_space(name)
    args = space.resolve_args(SMALL_ARGS[name])
    g = space.sample(np.random.default_rng(seed), args)
    top = max(d.size for d in space.choice_spec(args))  # beyond every decision (positions shift in fasterseg)
    pos = pick % len(g.choices)
    bad = list(g.choices)
    bad[pos] = -1 - beyond if negative else top + beyond
    with pytest.raises(GenotypeError) as e:
        space.decode(bad, args)
    one_line(e.value)


@SETTINGS
@given(name=st.sampled_from(sorted(SPACES)),
       choices=st.lists(st.one_of(st.integers(-2, 12), st.integers(), st.booleans(), st.floats(allow_nan=False),
                                  st.text(max_size=2), st.none()), max_size=80))
def test_random_choice_vectors_decode_or_refuse(name, choices):
    space = get_space(name)
    args = space.resolve_args(SMALL_ARGS[name])
    try:
        g = space.decode(choices, args)
    except GenotypeError as e:
        one_line(e)
        return
    assert space.encode(g.structure, args) == list(choices)


@SETTINGS
@given(text=st.one_of(st.text(max_size=80), json_values.map(json.dumps),
                      st.lists(st.lists(st.integers(-1, 12), max_size=5), max_size=4).map(json.dumps)))
def test_nekrasov_paper_encoding_of_any_text(text):
    try:
        g = parse_paper(text)
    except SegnasError as e:
        assert isinstance(e, GenotypeError)
        one_line(e)
        return
    assert g.space == "nekrasov"
