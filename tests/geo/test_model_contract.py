"""The model contract: which objects the API takes as a model factory."""

import torch

from sam2unext.geo.demo.stand_ins import PixelModel, PixelModelFactory, SlowPixelModelFactory, pixel_function
from sam2unext.geo.model_contract import is_factory
from sam2unext.loader import ModelLoader


def test_factories_are_callables_without_predict():
    assert is_factory(PixelModelFactory())
    assert is_factory(SlowPixelModelFactory())
    assert is_factory(ModelLoader(preset="sam2unext-test"))  # builds nothing until called
    assert not is_factory(PixelModel())
    assert not is_factory(None)


def test_stand_in_factories_build_models_with_the_contract():
    model = SlowPixelModelFactory(input_size=32, delay=0.0)()
    assert not is_factory(model)
    assert (model.input_size, model.low_res_size) == (32, None)
    images = torch.rand(2, 3, 32, 32)
    assert torch.equal(model.predict(images), torch.from_numpy(pixel_function(images.numpy())))
    assert model.calls == 1
