"""The sampler/controller contract: ``choice_spec`` describes ``encode``'s integers, ``decode`` inverts it."""

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import segnas.zoo
from segnas.errors import GenotypeError
from segnas.spaces import AutoDeepLabSpace, FasterSegSpace, SearchSpace, get_space
from segnas.spaces.base import Decision

FS, ADL = FasterSegSpace(), AutoDeepLabSpace()
FS_SMALL = {"layers": 5, "chis": [2, 3, 4], "head_chi": 4}  # sample gives the last cell head_chi
ADL_SMALL = {"layers": 5, "blocks": 3}
FS_TINY = {"chis": [1, 2], "stem_chi": 1, "head_chi": 1}  # for building: a few thousand parameters
ADL_TINY = {"filter_multiplier": 2, "stem": [4, 4, 8], "aspp_channels": 8, "decoder_channels": 8,
            "low_level_channels": 8}
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)


def round_trip(space, g):
    d = space.decode(g.choices, g.space_args, name=g.name, meta=g.meta)
    assert d.to_dict() == g.to_dict()
    assert d.archid == g.archid and d.choices == g.choices
    return d


def fasterseg_names(structure):
    """The decision name of every integer of ``encode``, rebuilt from the structure."""
    names = []
    for b, branch in enumerate(structure["branches"]):
        names += [f"branch{b}.final", f"branch{b}.cells"]
        for i in range(len(branch["cells"])):
            names += [f"branch{b}.cell{i}.{field}" for field in ("op", "scale", "chi")]
    return names


def raises_naming(space, choices, args, *needles):
    with pytest.raises(GenotypeError) as e:
        space.decode(choices, args)
    message = str(e.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


# -- round trips -----------------------------------------------------------
@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), layers=st.integers(4, 8), branches=st.integers(1, 3))
def test_fasterseg_samples_round_trip(seed, layers, branches):
    args = {"layers": layers, "chis": [2, 3, 4], "head_chi": 4, "branches": branches}
    g = FS.sample(np.random.default_rng(seed), args)
    round_trip(FS, g)
    spec = {d.name: d for d in FS.choice_spec(args)}
    names = fasterseg_names(g.structure)
    assert len(names) == len(g.choices)
    assert all(0 <= c < spec[n].size for c, n in zip(g.choices, names))
    order = [d.name for d in FS.choice_spec(args)]
    positions = [order.index(n) for n in names]
    assert positions == sorted(positions)  # the choices follow the spec's order


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), layers=st.integers(4, 8), blocks=st.integers(2, 5))
def test_autodeeplab_samples_round_trip(seed, layers, blocks):
    args = {"layers": layers, "blocks": blocks}
    g = ADL.sample(np.random.default_rng(seed), args)
    round_trip(ADL, g)
    spec = ADL.choice_spec(args)
    assert len(spec) == len(g.choices) == layers + 4 * blocks
    assert all(0 <= c < d.size for c, d in zip(g.choices, spec))


@pytest.mark.parametrize("space", [FS, ADL], ids=lambda s: s.name)
def test_default_args_round_trip(space):
    for seed in range(20):
        g = space.sample(np.random.default_rng(seed))
        round_trip(space, g)
        assert space.decode(np.array(g.choices)).choices == g.choices  # numpy integers are integers too


@pytest.mark.parametrize("name", segnas.zoo.list())
def test_zoo_round_trips(name):
    g = segnas.zoo.get(name)
    space = get_space(g.space)
    round_trip(space, g)
    spec = {d.name: d for d in space.choice_spec(g.space_args)}
    names = fasterseg_names(g.structure) if g.space == "fasterseg" else list(spec)
    assert len(names) == len(g.choices)
    assert all(c < spec[n].size for c, n in zip(g.choices, names))


@pytest.mark.parametrize("space, args, tiny", [(FS, {"layers": 6}, FS_TINY),
                                               (ADL, {"layers": 6, "blocks": 3}, ADL_TINY)],
                         ids=["fasterseg", "autodeeplab"])
def test_decoded_genotypes_build_and_run(space, args, tiny):
    for seed in range(4):
        g = space.sample(np.random.default_rng(seed), {**args, **tiny})
        d = round_trip(space, g)
        net = space.build(d, num_classes=3).eval()
        with torch.no_grad():
            logits = net(torch.randn(1, 3, 64, 64))
        assert logits.shape == (1, 3, 64, 64) and torch.isfinite(logits).all()


# -- the spec ----------------------------------------------------------------
def test_spec_shapes_and_constraints():
    spec = FS.choice_spec(FS_SMALL)
    assert len(spec) == 3 * (2 + 3 * 5)
    by = {d.name: d for d in spec}
    assert by["branch0.final"].size == 3 and by["branch0.cells"].size == 6
    assert by["branch1.cell2.op"].size == 5 and by["branch1.cell2.chi"].size == 3
    assert "present only for cell 2 < branch1.cells" in by["branch1.cell2.op"].constraint
    assert "present only" not in by["branch0.cell0.op"].constraint
    assert "distinct" in by["branch2.final"].constraint and "present only" in by["branch2.final"].constraint
    spec = ADL.choice_spec(ADL_SMALL)
    assert [d.name for d in spec[:6]] == [f"path.layer{i}" for i in range(5)] + ["cell.block0.input0"]
    assert [d.size for d in spec[5:9]] == [2, 8, 2, 8] and spec[-2].size == 4  # block 2 reads 4 states
    assert "'none'" in spec[6].constraint and "distinct" in spec[7].constraint
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec[0].size = 3  # type: ignore[misc]
    assert isinstance(spec[0], Decision)
    assert {"choice_spec", "decode"} <= SearchSpace.__abstractmethods__


@pytest.mark.parametrize("space", [FS, ADL], ids=lambda s: s.name)
def test_spec_refuses_bad_args(space):
    with pytest.raises(GenotypeError, match="space_args.layers"):
        space.choice_spec({"layers": 0})
    with pytest.raises(GenotypeError, match="unknown argument"):
        space.decode([0], {"nonsense": 1})


# -- decode refuses what is not an architecture --------------------------------
def test_autodeeplab_decode_errors_name_the_decision():
    g = ADL.sample(np.random.default_rng(0), ADL_SMALL)
    c, L = list(g.choices), 5
    raises_naming(ADL, c[:-1], ADL_SMALL, "choices[16] (cell.block2.op1) is missing", "takes 17")
    raises_naming(ADL, c + [0], ADL_SMALL, "cell.block2.op1", "remove the 1")
    raises_naming(ADL, [c[0], c[1], 4] + c[3:], ADL_SMALL, "choices[2] (path.layer2)", "allowed 0..3")
    raises_naming(ADL, [2] + c[1:], ADL_SMALL, "choices[0] (path.layer0)", "[0, 1]")
    bad = c[:]
    bad[2] = bad[1] + 2 if bad[1] < 2 else bad[1] - 2
    raises_naming(ADL, bad, ADL_SMALL, "choices[2] (path.layer2)", f"after scale index {c[1]}")
    bad = c[:]
    bad[L + 4], bad[L + 6] = 1, 1
    raises_naming(ADL, bad, ADL_SMALL, f"choices[{L + 6}] (cell.block1.input1)", "distinct", "0..2")
    bad = c[:]
    bad[L + 4] = 3  # block 1 reads states 0..2
    raises_naming(ADL, bad, ADL_SMALL, f"choices[{L + 4}] (cell.block1.input0)", "allowed 0..2")
    for value, needle in ((7, "'none'"), (8, "allowed 0..7"), (-1, "allowed 0..7"), (1.0, "integer"),
                          (True, "integer"), ("1", "integer")):
        bad = c[:]
        bad[L + 1] = value
        raises_naming(ADL, bad, ADL_SMALL, f"choices[{L + 1}] (cell.block0.op0)", needle)


def test_fasterseg_decode_errors_name_the_decision():
    a = FS_SMALL
    one = [0, 2, 1, 0, 0, 2, 0, 1]  # branch 0: two cells at 1/8
    assert FS.decode(one, a).structure["branches"][0]["cells"][1] == {"op": "conv_2x", "scale": 8, "chi": 3}
    two = [1, 2, 0, 0, 0, 0, 1, 2] + one
    assert len(FS.decode(two, a).structure["branches"]) == 2
    raises_naming(FS, [], a, "choices[0] (branch0.final) is missing")
    raises_naming(FS, one[:-1], a, "choices[7] (branch0.cell1.chi) is missing")
    raises_naming(FS, one + [1], a, "choices[9] (branch1.cells) is missing")  # trailing integers start a branch
    raises_naming(FS, one + [0, 1, 0, 0, 0], a, "choices[8] (branch1.final)", "branch0 too")
    raises_naming(FS, [1] + one[1:], a, "choices[0] (branch0.final) is 1", "branch0.cell1.scale")
    raises_naming(FS, [0, 0] + one[2:], a, "choices[1] (branch0.cells) is 0")
    raises_naming(FS, [0, 6] + one[2:], a, "choices[1] (branch0.cells) is 6", "allowed 0..5")
    raises_naming(FS, [0, 2, 5] + one[3:], a, "choices[2] (branch0.cell0.op) is 5", "allowed 0..4")
    raises_naming(FS, one[:7] + [3], a, "choices[7] (branch0.cell1.chi) is 3", "allowed 0..2")
    raises_naming(FS, one[:3] + [1] + one[4:], a, "choices[3] (branch0.cell0.scale) is 1", "must be 0")
    raises_naming(FS, [2, 2, 0, 0, 0, 0, 2, 0], a, "choices[6] (branch0.cell1.scale) is 2", "[0, 1]")
    raises_naming(FS, one[:2] + [0.0] + one[3:], a, "choices[2] (branch0.cell0.op)", "integer")
    three = [2, 3, 0, 0, 0, 0, 1, 0, 0, 2, 0] + two
    # more branches than space_args.branches = 2: check_structure allows it, so decode does too
    assert len(FS.decode(three, a).structure["branches"]) == 3
    raises_naming(FS, three + [0], a, "1 integer(s) after choices[26] (branch2.cell1.chi)", "at most 3")
    raises_naming(FS, [0, 1, 1, 0, 0], {**a, "ops": ["conv", "conv"]}, "choices[2] (branch0.cell0.op) is 1",
                  "twice")


# -- decode accepts exactly the architectures ------------------------------------
@SETTINGS
@given(data=st.data())
def test_autodeeplab_decode_agrees_with_check_structure(data):
    spec = ADL.choice_spec(ADL_SMALL)
    ops = ADL.resolve_args(ADL_SMALL)["ops"]
    c = [data.draw(st.integers(0, d.size - 1)) for d in spec]
    cell = [{"inputs": [c[5 + 4 * k], c[7 + 4 * k]], "ops": [ops[c[6 + 4 * k]], ops[c[8 + 4 * k]]]}
            for k in range(3)]
    try:
        ADL.make_genotype({"path": c[:5], "cell": cell}, ADL_SMALL)
        valid = True
    except GenotypeError:
        valid = False
    try:
        g = ADL.decode(c, ADL_SMALL)
    except GenotypeError:
        assert not valid
    else:
        assert valid and g.choices == c


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), data=st.data())
def test_fasterseg_decode_of_edited_choices_is_exact_or_refused(seed, data):
    g = FS.sample(np.random.default_rng(seed), {**FS_SMALL, "branches": 3})
    spec = {d.name: d for d in FS.choice_spec(FS_SMALL)}
    names = fasterseg_names(g.structure)
    c = list(g.choices)
    pos = data.draw(st.integers(0, len(c) - 1))
    c[pos] = data.draw(st.integers(0, spec[names[pos]].size - 1))
    cut = data.draw(st.integers(1, len(c)))
    for edited in (c, g.choices[:cut]):
        try:
            d = FS.decode(edited, FS_SMALL)
        except GenotypeError as e:
            assert "choices[" in str(e)
        else:
            assert d.choices == edited
            FS.validate(d)
            if edited is not c:  # a valid prefix drops whole branches
                assert d.structure["branches"] == g.structure["branches"][:len(d.structure["branches"])]
