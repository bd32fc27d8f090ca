"""timm's own ResNets against their conversion: max |logit difference| at 224x224, float32.

    python benchmarks/timm_parity.py --torch-python /path/to/venv-with-torch/bin/python \\
        [--arch resnet50d ...] [--json parity.json]

Two processes, as the package never needs torch: the one given by ``--torch-python`` (or
``$TORCH_PYTHON``; torch, torchvision and timm installed there) runs this file with
``--timm-side DIR``. For every architecture it builds timm's model (``pretrained=False``),
gives every BatchNorm random statistics and affine weights (timm's initialization would
leave zeros in the last BatchNorm of each block, and means 0 / variances 1 everywhere,
which would hide a wrong mapping; the last BatchNorm of each block gets small gammas, as
trained ones have, so that the deepest nets' logits stay of a few units) and the classifier
weights that give logits of a few units, switches to eval mode, publishes it exactly as timm does (``timm.models.save_for_hf``:
``config.json`` and ``model.safetensors``) and records its logits on random 0..255 RGB
images normalized as its ``pretrained_cfg`` says. For the six torchvision names it also
loads the same state dict into torchvision's model (strictly) and records its logits.

This process (the package's environment) then converts each published directory with
:func:`keras_resblocks.convert_timm.convert_timm` and prints the largest absolute logit
difference, and that difference relative to the largest |logit|.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARCHITECTURES = [
    "resnet18",
    "resnet34",
    "resnet26",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnet18d",
    "resnet34d",
    "resnet26d",
    "resnet50d",
    "resnet101d",
    "resnet152d",
]
TORCHVISION = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}
SIZE, BATCH, SEED = 224, 2, 0


# -- the torch side (runs under --torch-python) ---------------------------------------------
def timm_side(out_dir, names):
    import timm
    import torch
    import torchvision
    from safetensors.torch import save_file
    from timm.models import save_for_hf

    torch.manual_seed(SEED)
    torch.set_grad_enabled(False)
    images = torch.randint(0, 256, (BATCH, 3, SIZE, SIZE), dtype=torch.uint8)
    versions = {"torch": torch.__version__, "timm": timm.__version__}
    versions["torchvision"] = torchvision.__version__
    for name in names:
        model = timm.create_model(name, pretrained=False)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.2)
                module.running_mean.normal_(0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
        for block in model.modules():
            if isinstance(block, (timm.models.resnet.BasicBlock, timm.models.resnet.Bottleneck)):
                # A trained ResNet's last BatchNorm in each block has small gammas (timm starts
                # them at zero); at 1 the residual stream of resnet152 grows to logits of 1e7.
                last = block.bn3 if hasattr(block, "bn3") else block.bn2
                last.weight.uniform_(0.05, 0.25)
        model.fc.weight.normal_(0, 1 / model.fc.in_features**0.5)
        model.fc.bias.normal_(0, 0.2)
        model.eval()
        directory = Path(out_dir) / name
        save_for_hf(model, directory, safe_serialization=True)
        cfg = model.pretrained_cfg
        mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
        std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
        x = (images.float() / 255 - mean) / std
        outputs = {"images": images.permute(0, 2, 3, 1).contiguous(), "timm": model(x)}
        if name in TORCHVISION:
            reference = getattr(torchvision.models, name)(weights=None).eval()
            reference.load_state_dict(model.state_dict(), strict=True)
            outputs["torchvision"] = reference(x)
        save_file(outputs, str(directory / "outputs.safetensors"))
        print(f"timm side: {name}", flush=True)
    (Path(out_dir) / "versions.json").write_text(json.dumps(versions))


# -- the package side -----------------------------------------------------------------------
def compare(directory):
    import keras
    import numpy as np
    from safetensors.numpy import load_file

    from keras_resblocks.convert_timm import convert_timm

    config = json.loads((directory / "config.json").read_text())
    state = load_file(str(directory / "model.safetensors"))
    outputs = load_file(str(directory / "outputs.safetensors"))
    start = time.perf_counter()
    result = convert_timm(state, config, input_shape=(SIZE, SIZE, 3))
    seconds = time.perf_counter() - start
    head = result.model.get_layer("predictions")
    features = keras.Model(result.model.input, head.input)(
        outputs["images"].astype("float32"), training=False
    )
    logits = keras.ops.convert_to_numpy(
        keras.ops.add(keras.ops.matmul(features, head.kernel), head.bias)
    )
    row = {
        "architecture": config["architecture"],
        "tag": config["pretrained_cfg"].get("tag"),
        "config_input_size": config["pretrained_cfg"]["input_size"],
        "convert_seconds": round(seconds, 2),
    }
    for source in ("timm", "torchvision"):
        if source in outputs:
            diff = float(np.abs(logits - outputs[source]).max())
            row[source] = {
                "max_abs_diff": diff,
                "max_abs_logit": float(np.abs(outputs[source]).max()),
                "relative": diff / float(np.abs(outputs[source]).max()),
            }
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torch-python", default=os.environ.get("TORCH_PYTHON"))
    parser.add_argument("--arch", action="append", choices=ARCHITECTURES)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--timm-side", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = args.arch or ARCHITECTURES
    if args.timm_side:
        timm_side(args.timm_side, names)
        return 0
    if not args.torch_python:
        parser.error("needs --torch-python (or $TORCH_PYTHON): a Python with torch and timm")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import keras

    with tempfile.TemporaryDirectory() as tmp:
        command = [args.torch_python, __file__, "--timm-side", tmp]
        subprocess.run(command + [a for n in names for a in ("--arch", n)], check=True)
        versions = json.loads((Path(tmp) / "versions.json").read_text())
        rows = [compare(Path(tmp) / name) for name in names]
    print(
        "\n| architecture | max \\|logit\\| | max \\|diff\\| vs timm | vs torchvision | convert (s) |"
    )
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        tv = row.get("torchvision", {}).get("max_abs_diff")
        print(
            f"| `{row['architecture']}` | {row['timm']['max_abs_logit']:.1f} | "
            f"{row['timm']['max_abs_diff']:.1e} | {'-' if tv is None else f'{tv:.1e}'} | "
            f"{row['convert_seconds']:.1f} |"
        )
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.processor() or platform.system()}".strip(),
        "cpus": os.cpu_count(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        **versions,
        "size": SIZE,
        "batch": BATCH,
    }
    print(json.dumps(meta))
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
