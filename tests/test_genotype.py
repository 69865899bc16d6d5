import json

import pytest
import torch

import segnas
from segnas.errors import GenotypeError
from segnas.genotype import Genotype, load, save
from segnas.spaces import get_space


def test_round_trip_builds_the_same_network(tmp_path):
    g = segnas.zoo.get("fasterseg")
    path = save(g, tmp_path / "g.json")
    g2 = load(path)
    assert g2.to_dict() == g.to_dict() and g2.archid == g.archid
    torch.manual_seed(0)
    a = segnas.build(g, num_classes=5).eval()
    b = segnas.build(g2, num_classes=5).eval()
    assert [(k, v.shape) for k, v in a.state_dict().items()] == [(k, v.shape) for k, v in b.state_dict().items()]
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 64, 96)
    assert torch.equal(a(x), b(x))


def test_archid_depends_on_architecture_not_name():
    g = segnas.zoo.get("fasterseg")
    d = g.to_dict()
    d["name"] = "renamed"
    d.pop("archid")
    assert Genotype.from_dict(d).archid == g.archid
    d["structure"]["branches"][0]["cells"][0]["chi"] = 6
    assert Genotype.from_dict(d).archid != g.archid


def _write(tmp_path, data):
    p = tmp_path / "bad.json"
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.pop("space"), "space"),
    (lambda d: d.update(format_version=99), "format_version"),
    (lambda d: d.update(space="nope"), "nope"),
    (lambda d: d.update(space_version=7), "space_version"),
    (lambda d: d["space_args"].update(width=3), "width"),
    (lambda d: d["structure"]["branches"][0]["cells"][2].update(op="conv_9x9"), "structure.branches[0].cells[2].op"),
    (lambda d: d["structure"]["branches"][1]["cells"][4].update(scale=32), "structure.branches[1].cells[4].scale"),
    (lambda d: d["structure"]["branches"][0]["cells"][0].update(chi=5), "structure.branches[0].cells[0].chi"),
    (lambda d: d["structure"]["branches"][0]["cells"][0].update(chi=4.0), "structure.branches[0].cells[0].chi"),
    (lambda d: d["space_args"].update(ops=["sep_conv"]), "space_args.ops"),
    (lambda d: d["space_args"].update(chis=[0, 4]), "space_args.chis"),
    (lambda d: d["space_args"].update(chis=[12, 10, 8, 6, 4]), "space_args.chis"),  # min/max by position
    (lambda d: d.update(choices=[1, 2, 3]), "choices"),
    (lambda d: d.update(archid="0" * 16), "archid"),
    (lambda d: d["structure"]["branches"].append(d["structure"]["branches"][0]), "branches"),
])
def test_validation_names_the_bad_field(tmp_path, mutate, field):
    d = segnas.zoo.get("fasterseg").to_dict()
    if field != "archid":
        d.pop("archid")
    mutate(d)
    with pytest.raises(GenotypeError, match=field.replace("[", r"\[").replace("]", r"\]")) as e:
        load(_write(tmp_path, d))
    assert str(tmp_path) in str(e.value) and "\n" not in str(e.value)


def test_malformed_json_is_one_clear_line(tmp_path):
    with pytest.raises(GenotypeError, match="not valid JSON"):
        load(_write(tmp_path, "{not json"))
    with pytest.raises(GenotypeError, match="no such genotype file"):
        load(tmp_path / "missing.json")


def test_sampled_genotypes_are_valid_and_seeded():
    import numpy as np

    space = get_space("fasterseg")
    a = space.sample(np.random.default_rng(3))
    b = space.sample(np.random.default_rng(3))
    c = space.sample(np.random.default_rng(4))
    assert a.archid == b.archid != c.archid
    space.validate(a)
    net = segnas.build(a, num_classes=3)
    assert net(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)
