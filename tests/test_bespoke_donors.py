"""Conformance suite every registered donor passes: pretrained weights load, [0, 1] images in,
ImageNet logits out, traceable into blocks, a licence stated, a photograph of a cat recognised."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgeperf.bespoke import donors  # noqa: E402
from edgeperf.bespoke._data import bundled_images  # noqa: E402
from edgeperf.bespoke._graph import BlockGraph  # noqa: E402

#: ImageNet classes 281-285: tabby, tiger cat, Persian, Siamese, Egyptian cat.
CAT_CLASSES = range(281, 286)
RES = 128


@pytest.fixture(params=donors.names())
def donor(request):
    cls = donors.get(request.param)
    missing = cls.availability()
    if missing:
        pytest.skip(missing)
    return cls()


def test_donor_declares_itself(donor):
    d = donor.describe()
    assert d["name"] in donors.names() and d["licence"] and d["weights_package"] and d["native_resolution"] >= 128


def test_donor_builds_pretrained_eval_model_with_imagenet_logits(donor):
    model = donor.build(resolution=RES)
    assert not model.training
    with torch.no_grad():
        out = model(torch.rand(2, 3, RES, RES))
    assert out.shape == (2, 1000) and torch.isfinite(out).all()


def test_donor_traces_into_blocks(donor):
    graph = BlockGraph(donor.build(resolution=RES), torch.zeros(1, 3, RES, RES))
    blocks = graph.blocks(max_units=1)
    assert len(blocks) >= 10
    assert blocks[0].in_shape == (3, RES, RES) and min(b.out_shape[-1] for b in blocks) == RES // 32


def test_donor_recognises_the_bundled_cat(donor):
    from PIL import Image

    path = bundled_images()["chelsea.png"]
    img = np.asarray(Image.open(path).convert("RGB").resize((224, 224)), dtype=np.float32) / 255.0
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    with torch.no_grad():
        top = int(donor.build(resolution=224)(x).argmax())
    assert top in CAT_CLASSES


def test_unknown_donor_names_the_known_ones():
    from edgeperf.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="mobilenet-v2"):
        donors.get("resnet-9000")
