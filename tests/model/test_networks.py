"""The colorization networks: shapes on any size, factories, initialisation, GAN loss, and that they learn."""

from __future__ import annotations

import math
from typing import get_args

import pytest
import torch
import torch.nn.functional as F

from pipeline.model import networks
from pipeline.model.networks import GANLoss, define_discriminator, define_generator, init_weights
from pipeline.model.params import DiscriminatorParams, GeneratorParams, TrainParams

SMALL_G = GeneratorParams(base_filters=8, depth=3)
SMALL_D = DiscriminatorParams(base_filters=8)


def parameter_count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("upsample", ["transpose", "resize"])
@pytest.mark.parametrize("norm", ["batch", "instance"])
@pytest.mark.parametrize(("batch", "height", "width"), [(1, 33, 47), (2, 200, 200), (1, 32, 32), (3, 17, 5)])
def test_generator_maps_l_to_ab_at_any_size_in_train_mode(norm, upsample, batch, height, width):
    torch.manual_seed(0)
    generator = define_generator(GeneratorParams(base_filters=8, depth=6, norm=norm, upsample=upsample)).train()
    ab = generator(torch.rand(batch, 1, height, width) * 2 - 1)
    assert ab.shape == (batch, 2, height, width)
    assert ab.abs().max() <= 1 and torch.isfinite(ab).all()
    ab.mean().backward()


def test_generator_with_a_one_pixel_bottleneck_trains_on_one_image():
    """pix2pix's bottleneck: 2**depth == H, so the innermost features are 1×1 (batch norm must not see them)."""
    generator = define_generator(GeneratorParams(base_filters=8, depth=5)).train()
    assert generator(torch.rand(1, 1, 32, 32)).shape == (1, 2, 32, 32)


@pytest.mark.parametrize("norm", ["batch", "instance", "spectral"])
@pytest.mark.parametrize(("height", "width"), [(33, 47), (200, 200), (32, 32)])
def test_discriminator_gives_a_map_of_logits(norm, height, width):
    discriminator = define_discriminator(DiscriminatorParams(base_filters=8, norm=norm)).train()
    logits = discriminator(torch.randn(1, 3, height, width))
    assert logits.ndim == 4 and logits.shape[:2] == (1, 1) and min(logits.shape[-2:]) >= 2


def test_channels_last_gives_the_same_result():
    torch.manual_seed(0)
    generator, discriminator = define_generator(SMALL_G).eval(), define_discriminator(SMALL_D)
    with torch.no_grad():
        discriminator(torch.rand(2, 3, 33, 47))  # a training step's forward: spectral norm's power iteration has run
    discriminator.eval()
    L = torch.rand(2, 1, 33, 47)
    ab = generator(L)
    fast_generator = generator.to(memory_format=torch.channels_last)
    ab_channels_last = fast_generator(L.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(ab, ab_channels_last, atol=1e-5)
    pair = torch.cat([L, ab], dim=1)
    logits = discriminator(pair)
    fast_discriminator = discriminator.to(memory_format=torch.channels_last)
    assert torch.allclose(logits, fast_discriminator(pair.contiguous(memory_format=torch.channels_last)), atol=1e-5)


def test_every_name_the_params_allow_selects_a_network_part_and_no_other_exists():
    def allowed(model, field):
        return set(get_args(model.model_fields[field].annotation))

    assert allowed(GeneratorParams, "name") == set(networks._GENERATORS)
    assert allowed(GeneratorParams, "encoder") == set(networks.ENCODERS)
    assert allowed(DiscriminatorParams, "name") == set(networks._DISCRIMINATORS)
    assert allowed(GeneratorParams, "norm") == set(networks._NORMS) == allowed(DiscriminatorParams, "norm") - {"spectral"}
    assert allowed(TrainParams, "gan_mode") == set(networks._GAN_CRITERIA)
    for upsample in allowed(GeneratorParams, "upsample"):
        define_generator(GeneratorParams(base_filters=4, depth=2, upsample=upsample))


def test_unknown_names_raise_value_error_naming_the_choices():
    with pytest.raises(ValueError, match="'batch' or 'instance'"):
        GeneratorParams(norm="group")
    with pytest.raises(ValueError, match="lsgan, vanilla"):
        GANLoss("wgangp")


def test_resize_upsampling_leaves_no_checkerboard_on_a_flat_input():
    """A transposed 4×4 stride-2 conv gives alternate pixels different kernel taps; nearest-resize then conv does not."""
    torch.manual_seed(0)
    flat = torch.full((1, 1, 96, 96), 0.5)
    for upsample, uneven in (("transpose", True), ("resize", False)):
        ab = define_generator(GeneratorParams(base_filters=8, depth=2, norm="instance", upsample=upsample)).eval()(flat)
        inner = ab[0, 0, 16:-16, 16:-16]  # away from the borders' padding
        checker = (inner[0::2, 0::2] - inner[1::2, 1::2]).abs().max().item()
        assert (checker > 1e-4) == uneven, upsample


def test_spectral_norm_bounds_every_discriminator_conv_and_keeps_pix2pix_initialisation():
    torch.manual_seed(0)
    discriminator = define_discriminator(DiscriminatorParams(base_filters=8, n_layers=3, norm="spectral")).train()
    for _ in range(20):  # each forward pass in train mode runs one power iteration
        discriminator(torch.randn(2, 3, 32, 32))
    convs = [module for module in discriminator.modules() if isinstance(module, torch.nn.Conv2d)]
    assert len(convs) == 5 and not any(isinstance(module, torch.nn.BatchNorm2d) for module in discriminator.modules())
    for conv in convs:
        assert torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2).item() == pytest.approx(1.0, abs=0.05)
    assert convs[1].parametrizations.weight.original.std().item() == pytest.approx(0.02, rel=0.1)


def test_gan_loss_judges_real_by_the_sign_of_logits_or_the_nearer_label():
    assert GANLoss("vanilla").judged_real(torch.tensor([-0.1, 0.1])).tolist() == [False, True]
    assert GANLoss("lsgan").judged_real(torch.tensor([0.4, 0.6])).tolist() == [False, True]


def test_init_weights_follows_pix2pix():
    torch.manual_seed(0)
    generator = define_generator(GeneratorParams(base_filters=16, depth=4))
    conv = generator.down[2][1]
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert abs(conv.weight.mean().item()) < 2e-3
    norm = generator.down[2][2]
    assert norm.weight.mean().item() == pytest.approx(1.0, abs=0.01) and (norm.bias == 0).all()
    assert (generator.up[0][1].bias == 0).all()
    torch.nn.init.ones_(conv.weight)
    init_weights(generator, std=0.1)
    assert conv.weight.std().item() == pytest.approx(0.1, rel=0.05)


def test_gan_loss_values():
    vanilla, lsgan = GANLoss("vanilla"), GANLoss("lsgan")
    zeros, ones = torch.zeros(2, 1, 5, 7), torch.ones(2, 1, 5, 7)
    assert vanilla(zeros, True).item() == pytest.approx(math.log(2))
    assert vanilla(zeros, False).item() == pytest.approx(math.log(2))
    assert vanilla(ones * 3, True).item() == pytest.approx(math.log1p(math.exp(-3)))
    assert vanilla(ones * 3, False).item() == pytest.approx(math.log1p(math.exp(3)))
    assert lsgan(ones, True).item() == 0
    assert lsgan(ones, False).item() == 1
    assert lsgan(zeros, False).item() == 0
    assert GANLoss("lsgan", real_label=0.9)(ones, True).item() == pytest.approx(0.01)
    assert vanilla(zeros, True).ndim == 0


def test_gan_loss_follows_the_prediction_dtype_and_state_dict():
    loss = GANLoss("lsgan").to(torch.float64)
    assert loss(torch.ones(1, 1, 2, 2, dtype=torch.float64), False).dtype == torch.float64
    assert set(loss.state_dict()) == {"real_label", "fake_label"}


def fixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """4 smooth random 32×32 L images in [-1,1] and ab targets that are a smooth function of L."""
    L = F.interpolate(torch.rand(4, 1, 8, 8) * 2 - 1, size=(32, 32), mode="bilinear", align_corners=False)
    ab = 0.6 * torch.cat([torch.sin(2.5 * L), torch.cos(2 * L) - 0.5], dim=1)
    return L, ab


def test_l1_loss_goes_down_on_a_tiny_fixed_batch():
    torch.manual_seed(0)
    L, ab = fixed_batch()
    generator = define_generator(SMALL_G).train()
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    losses = []
    for _ in range(50):
        loss = F.l1_loss(generator(L), ab)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def test_a_gan_step_runs_and_gives_finite_losses():
    torch.manual_seed(0)
    L, ab = fixed_batch()
    generator, discriminator = define_generator(SMALL_G).train(), define_discriminator(SMALL_D).train()
    gan_loss = GANLoss("vanilla")
    adam = dict(lr=2e-4, betas=(0.5, 0.999))
    optimizer_g = torch.optim.Adam(generator.parameters(), **adam)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), **adam)
    for _ in range(2):
        fake_ab = generator(L)

        real_logits = discriminator(torch.cat([L, ab], dim=1))
        fake_logits = discriminator(torch.cat([L, fake_ab.detach()], dim=1))
        loss_d = 0.5 * (gan_loss(real_logits, True) + gan_loss(fake_logits, False))
        optimizer_d.zero_grad()
        loss_d.backward()
        optimizer_d.step()

        for p in discriminator.parameters():
            p.requires_grad_(False)
        loss_g = gan_loss(discriminator(torch.cat([L, fake_ab], dim=1)), True) + 100 * F.l1_loss(fake_ab, ab)
        optimizer_g.zero_grad()
        loss_g.backward()
        optimizer_g.step()
        for p in discriminator.parameters():
            p.requires_grad_(True)

        assert math.isfinite(loss_d.item()) and math.isfinite(loss_g.item())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in generator.parameters())


def test_parameter_counts_of_the_default_params_and_of_pix2pix():
    """The defaults are a small U-Net for CPUs (about 1 M parameters); base_filters 64 and depth 8 are pix2pix's 54 M."""
    assert parameter_count(define_generator(GeneratorParams())) == 1_042_738
    assert parameter_count(define_discriminator(DiscriminatorParams())) == 42_865  # 2 layers, spectral norm (no norm layers)
    assert parameter_count(define_discriminator(DiscriminatorParams(n_layers=3, norm="batch"))) == 175_313  # pix2pix's shape
    assert parameter_count(define_generator(GeneratorParams(base_filters=64, depth=8))) == 54_410_434
