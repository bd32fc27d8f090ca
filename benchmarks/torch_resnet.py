"""The CIFAR ResNet of He et al. 2015 (option A shortcuts) trained in PyTorch eager mode.

    python benchmarks/torch_resnet.py --model resnet20 --dtype bfloat16 --steps 60 --json

The reference contender of ``benchmarks/cpu_training.py``, written the plain way:
3x3 convolutions without bias, BatchNorm, ReLU, option A shortcuts (subsample by 2,
zero-pad the channels), global average pooling and a linear head; 6n+2 layers. Trained
with SGD (Nesterov momentum 0.9, lr 0.1, weight decay 5e-4) on cross-entropy (the budget
recipe's), at batch 128, on random tensors already in memory: no input pipeline and
no augmentation. ``--dtype bfloat16`` runs the forward pass and the loss under
``torch.autocast("cpu", dtype=torch.bfloat16)``. Images/s are taken over ``--steps``
steps after ``--warmup`` untimed ones.

PyTorch is not a dependency of keras-resblocks: run this with a Python that has torch.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and an option A (parameter-free) shortcut."""

    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = (planes - in_planes) // 2 if stride != 1 or in_planes != planes else 0
        self.stride = stride

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.stride != 1 or self.pad:
            shortcut = F.pad(
                x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, self.pad, self.pad)
            )
        return F.relu(out + shortcut)


class CifarResNet(nn.Module):
    """ResNet-``depth`` for 32x32 images: stages of 16, 32 and 64 channels."""

    def __init__(self, depth, num_classes=10):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2. Received: depth={depth}")
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = self.blocks(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def measure(
    model_name="resnet20",
    dtype="float32",
    batch=128,
    steps=60,
    warmup=10,
    batches_in_memory=8,
    seed=0,
):
    """Train ``model_name`` for ``warmup + steps`` steps; returns images/s and the setup.

    Example:

    >>> measure("resnet8", steps=1, warmup=1, batch=4, batches_in_memory=1)["images"]
    4
    """
    torch.manual_seed(seed)
    model = CifarResNet(int(model_name.removeprefix("resnet")))
    model.train()
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    images = torch.randn(batches_in_memory, batch, 3, 32, 32)
    labels = torch.randint(0, 10, (batches_in_memory, batch))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16")

    def step(i):
        x, y = images[i % batches_in_memory], labels[i % batches_in_memory]
        with autocast:
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    for i in range(warmup):
        step(i)
    start = time.perf_counter()
    for i in range(steps):
        loss = step(i)
    seconds = time.perf_counter() - start
    if not torch.isfinite(loss):
        raise RuntimeError(f"the loss became {float(loss)}")
    return {
        "images_per_second": steps * batch / seconds,
        "seconds": seconds,
        "images": steps * batch,
        "steps": steps,
        "warmup_steps": warmup,
        "batch": batch,
        "model": model_name,
        "dtype": dtype,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet20", help="resnetN, N = 6n+2")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=60, help="timed steps")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    result = measure(args.model, args.dtype, args.batch, args.steps, args.warmup)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.model} {args.dtype} batch {args.batch}: "
            f"{result['images_per_second']:.1f} images/s over {args.steps} steps "
            f"({result['threads']} threads)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
