"""A checkpoint at an s3:// URL: the header read for its bands, one download per machine, a cheap fingerprint."""

from __future__ import annotations

import pytest

from sam2unext.errors import CheckpointError
from sam2unext.geo.storage import Location
from sam2unext.loader import ModelLoader, demo_weights_path


def test_checkpoint_from_s3(s3_bucket, tmp_path, monkeypatch):
    from sam2unext.api import checkpoint_bands

    monkeypatch.setenv("SAM2UNEXT_CACHE", str(tmp_path / "cache"))
    Location(s3_bucket).upload_file(demo_weights_path(), "models/demo.safetensors")
    url = f"{s3_bucket}/models/demo.safetensors"
    assert checkpoint_bands(url) == checkpoint_bands(demo_weights_path())
    assert not (tmp_path / "cache").exists()  # the bands came from the header alone

    loader = ModelLoader(checkpoint=url, device="cpu")
    print(loader.fingerprint())
    assert loader.fingerprint()["checkpoint"]["size"] == demo_weights_path().stat().st_size
    model = loader()
    reference = ModelLoader(checkpoint=str(demo_weights_path()), device="cpu")()
    for (name, a), (_, b) in zip(model.state_dict().items(), reference.state_dict().items(), strict=True):
        assert a.equal(b), name
    copies = list((tmp_path / "cache").rglob("demo.safetensors"))
    assert len(copies) == 1
    ModelLoader(checkpoint=url, device="cpu")()  # a second load on this machine: no second copy
    assert list((tmp_path / "cache").rglob("*.safetensors")) == copies

    with pytest.raises(CheckpointError, match=rf"cannot read checkpoint {s3_bucket}/models/none.safetensors"):
        ModelLoader(checkpoint=f"{s3_bucket}/models/none.safetensors", device="cpu").fingerprint()
