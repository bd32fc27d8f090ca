#!/usr/bin/env python
"""Convert the pretrained CIFAR-10 ResNets of akamaster/pytorch_resnet_cifar10 into checkpoints.

    python -m scripts.convert_pytorch_cifar resnet20-12fca82f.th --depth 20 \\
        --output weights/resnet20_cifar10_akamaster [--data cifar10-jpeg.tar.gz] [--overwrite]

A maintenance tool of this repository: it wrote the bundled checkpoints
``resnet{20,32,44,56}_cifar10_akamaster`` in ``weights/`` (writing them again needs
``--overwrite``). The package never imports
it, and it needs no PyTorch. Bad input (a truncated file, a pickle naming any other
Python global, a missing or extra tensor, a shape that does not fit ``--depth``) stops
it with a one-line error before anything is written.

Reading the file without torch. The files are PyTorch's old (non-zip) ``torch.save``
format: three small pickles (a magic number, a protocol version, the writer's type
sizes), the pickled object, the pickled list of storage keys, then for each of those
storages an int64 element count and its raw little-endian data. The object pickle is
read by a restricted unpickler: ``find_class`` maps only ``collections.OrderedDict``,
``torch._utils._rebuild_tensor`` / ``_rebuild_tensor_v2`` and ``torch.FloatStorage`` /
``torch.LongStorage`` to local stand-ins and refuses every other global, so nothing
named in the file is imported or called; ``persistent_load`` turns each storage
reference into a placeholder that is filled from the bytes after the pickles.

The shortcut. Upstream's option A pads the strided identity with ``planes // 4`` zero
channels *before* and ``planes // 4`` *after* it; this package's ``shortcut="zero_pad"``
appends all the zeros after. Rather than adding a placement option to the shortcut
(a new config field, and a second variant of an architecture that is otherwise the
same), the conversion permutes channels: each stage's residual stream gets an order in
which the shortcut's copied channels come first and its zero channels last, and every
weight that reads or writes that stream is permuted to match (the input side of each
block's first conv, the output side of each block's second conv and its BatchNorm, the
stem conv and BatchNorm, and the rows of the classifier). Convolutions, BatchNorm, ReLU,
the residual adds and global average pooling all act channel by channel or are linear in
the channels, so the converted net computes exactly the same logits, and the checkpoint
is an ordinary ``resnet20``/``32``/``44``/``56``. tests/test_port_cifar.py proves it
against an independent float64 NumPy implementation of upstream's forward pass.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import pickle
import shlex
import sys
from pathlib import Path

import numpy as np

SOURCE_REPO = "akamaster/pytorch_resnet_cifar10"
SOURCE_URL = f"https://github.com/{SOURCE_REPO}"
SOURCE_COMMIT = "d5489e8995e81e91ce6b1d69dcc98ad579b0b153"
# Upstream's README table (test accuracy, %), for the files this tool was written for.
UPSTREAM_README_ACCURACY = {20: 91.73, 32: 92.63, 44: 93.10, 56: 93.39}
# Upstream's trainer.py feeds x / 255 normalized with ImageNet's mean and std.
PREPROCESSING = {"scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
STAGE_WIDTHS = (16, 32, 64)
NUM_CLASSES = 10
EVAL_BATCH_SIZE = 250  # divides the 10,000 test images: no padded last batch
REFERENCE_IMAGES = 8
LICENSE_TEXT = """\
Copyright (c) 2018, Yerlan Idelbayev

Redistribution and use in source and binary forms, with or without modification, are permitted provided that the following conditions are met:

1. Redistributions of source code must retain the above copyright notice, this list of conditions and the following disclaimer.

2. Redistributions in binary form must reproduce the above copyright notice, this list of conditions and the following disclaimer in the documentation and/or other materials provided with the distribution.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""

_MAGIC = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001
_STORAGE_DTYPES = {"FloatStorage": np.dtype("<f4"), "LongStorage": np.dtype("<i8")}
_BN_FIELDS = {
    "weight": "gamma",
    "bias": "beta",
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
}


class ConversionError(ValueError):
    """A source file that cannot be read or does not hold the expected network."""


# -- reading the old torch.save format without torch -------------------------------------
class _Storage:
    def __init__(self, key, type_name, numel):
        self.key, self.dtype, self.numel = key, _STORAGE_DTYPES[type_name], numel
        self.data = None


class _TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _rebuild_tensor(storage, storage_offset, size, stride, *_requires_grad_hooks_metadata):
    # Stands in for torch._utils._rebuild_tensor(storage, offset, size, stride) and
    # _rebuild_tensor_v2(..., requires_grad, backward_hooks[, metadata]).
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch", "FloatStorage"): "FloatStorage",
    ("torch", "LongStorage"): "LongStorage",
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path, storages):
        super().__init__(file)
        self._path, self._storages = path, storages

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            allowed = sorted(f"{m}.{n}" for m, n in _ALLOWED_GLOBALS)
            raise ConversionError(
                f"{self._path} names the Python global {module}.{name}; this reader maps only "
                f"{allowed} and refuses anything else (nothing was imported or run). "
                f"Received: {module}.{name}"
            ) from None

    def persistent_load(self, pid):
        # ('storage', storage type, key, location, element count, view metadata)
        if not (
            isinstance(pid, tuple)
            and len(pid) == 6
            and pid[0] == "storage"
            and pid[1] in _STORAGE_DTYPES
            and isinstance(pid[2], str)
            and isinstance(pid[4], int)
            and pid[4] >= 0
            and pid[5] is None
        ):
            raise ConversionError(
                f"{self._path} holds a persistent id that is not a plain float or int64 "
                f"storage. Received: {pid!r}"[:400]
            )
        storage = self._storages.setdefault(pid[2], _Storage(pid[2], pid[1], pid[4]))
        if (storage.dtype, storage.numel) != (_STORAGE_DTYPES[pid[1]], pid[4]):
            raise ConversionError(
                f"{self._path} describes storage {pid[2]} twice, differently. Received: {pid!r}"
            )
        return storage


def read_torch_legacy(path):
    """The object saved in an old (non-zip) ``torch.save`` file, tensors as NumPy arrays.

    Only plain containers, ``collections.OrderedDict`` and float32 / int64 tensors
    are accepted; any other pickled global is refused with a :class:`ConversionError`
    before it is imported or called.

    Example:

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "empty.th"
    >>> _ = path.write_bytes(b"")
    >>> read_torch_legacy(path)
    Traceback (most recent call last):
    ...
    scripts.convert_pytorch_cifar.ConversionError: .../empty.th is truncated or not an old-format (non-zip) torch.save file (EOFError: Ran out of input). Received: .../empty.th
    """
    path = Path(path)
    storages = {}
    try:
        with open(path, "rb") as f:
            if f.read(4) == b"PK\x03\x04":
                raise ConversionError(
                    f"{path} is a zip-format torch.save file (PyTorch >= 1.6); this reader takes "
                    f"the old format of the pytorch_resnet_cifar10 files. Received: {path}"
                )
            f.seek(0)
            header = [_RestrictedUnpickler(f, path, storages).load() for _ in range(3)]
            if header[0] != _MAGIC or header[1] != _PROTOCOL_VERSION:
                raise ConversionError(
                    f"{path} is not an old-format torch.save file (magic number and protocol "
                    f"{_MAGIC:#x}, {_PROTOCOL_VERSION}). Received: {header[0]!r}, {header[1]!r}"
                )
            if not isinstance(header[2], dict) or header[2].get("little_endian") is not True:
                raise ConversionError(
                    f"{path} was not written little-endian. Received: {header[2]!r}"
                )
            obj = _RestrictedUnpickler(f, path, storages).load()
            keys = _RestrictedUnpickler(f, path, storages).load()
            if not isinstance(keys, list) or sorted(keys) != sorted(storages):
                raise ConversionError(
                    f"{path}: the storage list does not match the tensors. "
                    f"Received: {len(storages)} storages, key list {keys!r}"[:400]
                )
            for key in keys:
                storage = storages[key]
                count = np.frombuffer(_read_exactly(f, 8, path), "<i8")[0]
                if count != storage.numel:
                    raise ConversionError(
                        f"{path}: storage {key} holds {count} elements where "
                        f"{storage.numel} were announced. Received: {count}"
                    )
                nbytes = storage.numel * storage.dtype.itemsize
                storage.data = np.frombuffer(_read_exactly(f, nbytes, path), storage.dtype)
            trailing = len(f.read())
    except ConversionError:
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
    ) as error:
        raise ConversionError(
            f"{path} is truncated or not an old-format (non-zip) torch.save file "
            f"({type(error).__name__}: {error}). Received: {path}"
        ) from None
    if trailing:
        raise ConversionError(
            f"{path} has {trailing} bytes after its last storage. Received: {path}"
        )
    return _materialize(obj, path)


def _read_exactly(f, n, path):
    data = f.read(n)
    if len(data) != n:
        raise ConversionError(
            f"{path} is truncated: a storage needs {n} more bytes, "
            f"{len(data)} are left. Received: {path}"
        )
    return data


def _materialize(obj, path):
    if isinstance(obj, _TensorRef):
        data, itemsize = obj.storage.data, obj.storage.dtype.itemsize
        last = obj.offset + sum((n - 1) * s for n, s in zip(obj.size, obj.stride) if n)
        if (
            obj.offset < 0
            or any(s < 0 for s in obj.stride)
            or (all(obj.size) and last >= len(data))
        ):
            raise ConversionError(
                f"{path}: a tensor reaches outside its storage. "
                f"Received: size {obj.size}, stride {obj.stride}"
            )
        return np.lib.stride_tricks.as_strided(
            data[obj.offset :], shape=obj.size, strides=[s * itemsize for s in obj.stride]
        ).copy()
    if isinstance(obj, dict):
        return type(obj)((k, _materialize(v, path)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v, path) for v in obj)
    return obj


# -- the network -------------------------------------------------------------------------
def upstream_shapes(depth):
    """``{name: shape}`` of the state dict of upstream's ``resnet{depth}`` (no ``module.``).

    ``depth`` is 6n+2 (20, 32, 44, 56, 110, ...); BatchNorm's ``num_batches_tracked``,
    which newer PyTorch versions add, is optional and not listed.

    Example:

    >>> shapes = upstream_shapes(20)
    >>> len(shapes), shapes["layer2.0.conv1.weight"], shapes["linear.weight"]
    (97, (32, 16, 3, 3), (10, 64))
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ConversionError(
            f"`depth` must be 6n+2 (20, 32, 44, 56, ...). Received: depth={depth!r}"
        )
    shapes = {"conv1.weight": (STAGE_WIDTHS[0], 3, 3, 3)}
    shapes.update({f"bn1.{field}": (STAGE_WIDTHS[0],) for field in _BN_FIELDS})
    channels = STAGE_WIDTHS[0]
    for stage, width in enumerate(STAGE_WIDTHS, start=1):
        for block in range((depth - 2) // 6):
            prefix = f"layer{stage}.{block}"
            shapes[f"{prefix}.conv1.weight"] = (width, channels, 3, 3)
            shapes[f"{prefix}.conv2.weight"] = (width, width, 3, 3)
            for bn in ("bn1", "bn2"):
                shapes.update({f"{prefix}.{bn}.{field}": (width,) for field in _BN_FIELDS})
            channels = width
    shapes["linear.weight"] = (NUM_CLASSES, channels)
    shapes["linear.bias"] = (NUM_CLASSES,)
    return shapes


def _depth_in(state_dict):
    blocks = {k.split(".")[1] for k in state_dict if k.startswith("layer1.") and k.count(".") >= 2}
    return 6 * len(blocks) + 2 if blocks else None


def check_state_dict(state_dict, depth, source="the state dict"):
    """Strip ``module.`` and check names and shapes against upstream's ``resnet{depth}``.

    Returns ``{name: float32 array}``; raises :class:`ConversionError` naming the
    first missing, extra or misshapen tensors.

    Example:

    >>> check_state_dict({}, 20)
    Traceback (most recent call last):
    ...
    scripts.convert_pytorch_cifar.ConversionError: the state dict lacks 97 tensor(s) of a depth-20 network: bn1.bias, bn1.running_mean, bn1.running_var, bn1.weight, conv1.weight and 92 more. Received: depth=20
    """
    expected = upstream_shapes(depth)
    if not isinstance(state_dict, dict) or not all(isinstance(k, str) for k in state_dict):
        raise ConversionError(
            f"{source} is not a dict of named tensors. Received: {type(state_dict).__name__}"
        )
    tensors = {
        k.removeprefix("module."): v
        for k, v in state_dict.items()
        if not k.endswith(".num_batches_tracked")
    }
    found = _depth_in(tensors)
    hint = f" (it holds a depth-{found} network)" if found and found != depth else ""
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing:
        raise ConversionError(
            f"{source} lacks {len(missing)} tensor(s) of a depth-{depth} network"
            f"{hint}: {_names(missing)}. Received: depth={depth}"
        )
    if extra:
        raise ConversionError(
            f"{source} holds {len(extra)} tensor(s) that a depth-{depth} network "
            f"does not have{hint}: {_names(extra)}. Received: depth={depth}"
        )
    for name, shape in expected.items():
        value = tensors[name]
        if not isinstance(value, np.ndarray) or value.shape != shape:
            got = value.shape if isinstance(value, np.ndarray) else type(value).__name__
            raise ConversionError(
                f"{source}: tensor {name} has shape {got} where a depth-{depth} "
                f"network has {shape}. Received: {name} shape {got}"
            )
        if value.dtype != np.float32:
            raise ConversionError(
                f"{source}: tensor {name} is {value.dtype}, not float32. "
                f"Received: dtype={value.dtype}"
            )
    return tensors


def _names(names, shown=5):
    return ", ".join(names[:shown]) + (
        f" and {len(names) - shown} more" if len(names) > shown else ""
    )


def keras_weights(tensors, depth):
    """Upstream tensors (checked, no ``module.``) as this package's ``{variable.path: array}``.

    Conv kernels go from (out, in, kh, kw) to (kh, kw, in, out), the classifier is
    transposed, and the channels of each stage's residual stream are permuted so that
    ``shortcut="zero_pad"`` (zeros appended) matches upstream's option A (zeros on both
    sides); see the module docstring.
    """
    ours = {}
    perm = np.arange(STAGE_WIDTHS[0])  # our channel i of the stream is upstream's perm[i]

    def conv(name, in_perm=None, out_perm=None):
        kernel = tensors[name].transpose(2, 3, 1, 0)
        if in_perm is not None:
            kernel = kernel[:, :, in_perm, :]
        if out_perm is not None:
            kernel = kernel[:, :, :, out_perm]
        return kernel

    def batch_norm(source, target, order=None):
        for field, variable in _BN_FIELDS.items():
            value = tensors[f"{source}.{field}"]
            ours[f"{target}/{variable}"] = value if order is None else value[order]

    ours["stem_conv/kernel"] = conv("conv1.weight", out_perm=perm)
    batch_norm("bn1", "stem_bn", perm)
    channels = STAGE_WIDTHS[0]
    for stage, width in enumerate(STAGE_WIDTHS, start=1):
        for block in range((depth - 2) // 6):
            source, target = f"layer{stage}.{block}", f"stage{stage}_block{block + 1}"
            stream_in = perm
            if width != channels:
                pad = width // 4
                if 2 * pad + channels != width:
                    raise ConversionError(
                        f"Option A pads {pad} channels on each side of {channels}; "
                        f"that does not give {width}. Received: width={width}"
                    )
                # Upstream: [pad zeros | the stream | pad zeros]; ours: [the stream | zeros].
                perm = np.concatenate(
                    [pad + perm, np.arange(pad), np.arange(pad + channels, width)]
                )
            ours[f"{target}/conv1/kernel"] = conv(f"{source}.conv1.weight", in_perm=stream_in)
            batch_norm(f"{source}.bn1", f"{target}/bn1")
            ours[f"{target}/conv2/kernel"] = conv(f"{source}.conv2.weight", out_perm=perm)
            batch_norm(f"{source}.bn2", f"{target}/bn2", perm)
            channels = width
    ours["predictions/kernel"] = tensors["linear.weight"].T[perm]
    ours["predictions/bias"] = tensors["linear.bias"]
    return {k: np.ascontiguousarray(v, dtype="float32") for k, v in ours.items()}


def build_model(tensors, depth, name=None):
    """This package's ``resnet{depth}`` holding the converted upstream tensors.

    It takes raw 0..255 RGB (upstream's normalization is its ``preprocessing``) and
    ends in softmax, like every checkpoint of the package.
    """
    from keras_resblocks import ResNet, cifar_architecture

    weights = keras_weights(tensors, depth)
    model = ResNet(
        cifar_architecture(depth),
        num_classes=NUM_CLASSES,
        preprocessing=PREPROCESSING,
        name=name or f"resnet{depth}",
    )
    variables = {v.path: v for v in model.variables}
    if set(variables) != set(weights):
        raise ConversionError(
            f"The converted weights do not name the model's variables. Received: "
            f"{sorted(set(variables) ^ set(weights))[:5]}"
        )
    for path, variable in variables.items():
        variable.assign(weights[path])
    return model


def load_upstream(path, depth):
    """Read and check a pytorch_resnet_cifar10 file: ``(tensors, best_prec1)``."""
    obj = read_torch_legacy(path)
    if not isinstance(obj, dict) or "state_dict" not in obj:
        got = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise ConversionError(f"{path} holds no 'state_dict'. Received: {got}")
    return check_state_dict(obj["state_dict"], depth, source=str(path)), obj.get("best_prec1")


# -- writing a checkpoint ----------------------------------------------------------------
def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _measure(model, data):
    """Top-1 accuracy on the test split of ``data`` with the package's evaluator, cross-checked."""
    from keras_resblocks.training.data import load_dataset
    from keras_resblocks.training.callbacks import evaluate_accuracy

    dataset = load_dataset(data, validation=0)
    x, y = dataset.x_test, dataset.y_test
    if dataset.labels != LABELS or len(x) % EVAL_BATCH_SIZE:
        raise ConversionError(
            f"{data} is not the CIFAR-10 image folder this tool expects (classes "
            f"{LABELS}, a multiple of {EVAL_BATCH_SIZE} test images). Received: "
            f"classes {dataset.labels}, {len(x)} test images"
        )
    # What `keras-resblocks evaluate` computes; the batch size divides the test set,
    # so no padded batch is ever counted.
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    accuracy = evaluate_accuracy(model, x, y, EVAL_BATCH_SIZE)
    correct = int((model.predict(x, batch_size=EVAL_BATCH_SIZE, verbose=0).argmax(-1) == y).sum())
    if abs(accuracy - correct / len(x)) > 0.5 / len(x):
        raise ConversionError(
            f"The evaluator and argmax(predict) disagree on {data}. "
            f"Received: {accuracy} vs {correct}/{len(x)}"
        )
    return correct / len(x), x[:: len(x) // REFERENCE_IMAGES][:REFERENCE_IMAGES], len(x)


def convert(source, depth, output, data=None, command=None, overwrite=False):
    """Convert one upstream file into a checkpoint directory at ``output``; return it.

    A checkpoint already at ``output`` is replaced only with ``overwrite=True``.

    With ``data`` (the CIFAR-10 JPEG image folder or its .tar.gz) the test accuracy is
    measured and recorded, and the reference batch is 8 of its test images; without
    it, no metric is recorded and the reference batch is 8 seeded random images.
    Everything is read and checked before anything is written.
    """
    from keras_resblocks import save_pretrained
    from keras_resblocks.checkpoints.card import card_for_source
    from keras_resblocks.checkpoints.io import check_overwritable, record_file_hashes

    source, output = Path(source), Path(output)
    check_overwritable(output, overwrite, name="output")
    tensors, best_prec1 = load_upstream(source, depth)
    name = output.name
    model = build_model(tensors, depth, name=name)
    metrics = evaluate_command = None
    if data is not None:
        accuracy, reference, images = _measure(model, data)
        metrics = {"test_accuracy": accuracy}
        evaluate_command = (
            f"keras-resblocks evaluate {name} --data {Path(data).name} "
            f"--batch-size {EVAL_BATCH_SIZE}"
        )
    else:
        reference = np.random.default_rng(0).integers(
            0, 256, (REFERENCE_IMAGES, 32, 32, 3), "uint8"
        )
    upstream = {
        "repository": SOURCE_URL,
        "commit": SOURCE_COMMIT,
        "file": source.name,
        "file_sha256": _sha256(source),
        "license": "BSD-2-Clause",
        "readme_test_accuracy_percent": UPSTREAM_README_ACCURACY.get(depth),
        "stored_best_prec1": None if best_prec1 is None else round(float(best_prec1), 4),
    }
    path = save_pretrained(
        model,
        output,
        overwrite=overwrite,
        labels=LABELS,
        dataset="cifar10",
        metrics=metrics,
        command=evaluate_command,
        license="bsd-2-clause",
        reference_inputs=reference,
        model_name=name,
        eval_split="test (JPEG q75 copy)" if metrics else "test",
        ported_from=upstream,
        license_text=LICENSE_TEXT,
        converted_by=command,
        measurement=None
        if not metrics
        else {
            "test_accuracy": metrics["test_accuracy"],
            "images": images,
            "data": "CIFAR-10 (JPEG q75 copy): the 10,000 CIFAR-10 test images as JPEG files of "
            "quality 75 with 4:2:0 chroma subsampling, not the lossless originals",
            "command": evaluate_command,
        },
    )
    # The card loads it by the name it ships under, and tells where it comes from.
    card = path / "README.md"
    text = card_for_source(card.read_text(encoding="utf-8"), name)
    card.write_text(
        text + _card_sections(name, depth, upstream, metrics, evaluate_command, command),
        encoding="utf-8",
    )
    record_file_hashes(path)  # the card changed after save_pretrained hashed it
    return path


def _card_sections(name, depth, upstream, metrics, evaluate_command, command):
    readme, stored = upstream["readme_test_accuracy_percent"], upstream["stored_best_prec1"]
    lines = [
        "",
        "## Provenance: ported, not trained by keras-resblocks",
        "",
        f"These are the pretrained ResNet-{depth} weights of [{SOURCE_REPO}]({SOURCE_URL}) by "
        f"Yerlan Idelbayev (BSD-2-Clause), file `{upstream['file']}` (sha256 "
        f"`{upstream['file_sha256']}`) at commit `{SOURCE_COMMIT}`, trained there for 200 epochs "
        "on the original CIFAR-10 training images. They were converted exactly, without PyTorch, "
        "by keras-resblocks' `scripts/convert_pytorch_cifar.py`; keras-resblocks did not train them.",
        "",
        "The model takes raw 0..255 RGB images: upstream's normalization (x / 255, then mean "
        "(0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225)) is part of the model, and so is "
        "upstream's BatchNorm epsilon (1e-5). Upstream's option A shortcut pads zero channels on "
        "both sides of the identity, keras-resblocks' `zero_pad` after it; the conversion "
        "permutes channels to match, so the architecture is the plain "
        f"`resnet{depth}`. The test suite checks the converted model against an independent "
        "float64 NumPy implementation of upstream's forward pass on the original tensors "
        "(largest logit difference within 1e-4).",
        "",
        "## Accuracy",
        "",
        "| figure | whose | test images | top-1 |",
        "| --- | --- | --- | --- |",
    ]
    if readme is not None:
        lines.append(f"| upstream README | theirs | original lossless CIFAR-10 | {readme:.2f}% |")
    if stored is not None:
        lines.append(
            f"| `best_prec1` stored in the file | theirs | original lossless CIFAR-10 | "
            f"{stored:.2f}% |"
        )
    if metrics:
        lines.append(
            f"| measured by keras-resblocks | ours | CIFAR-10 (JPEG q75 copy) | "
            f"{100 * metrics['test_accuracy']:.2f}% |"
        )
    lines += [
        "",
        "Upstream's figures are theirs, on the original lossless test set, and the epoch kept "
        "was the best one on that same test set, so they are slightly optimistic.",
    ]
    if metrics:
        lines += [
            "Ours was measured on a copy of the 10,000 test images stored as JPEG files of "
            "quality 75 with 4:2:0 chroma subsampling. Nets trained on the lossless images lose "
            "about 10 points on that copy, so the two figures are not comparable: the numerical "
            "check above, not this accuracy, is what shows the port is exact. Measured with the "
            "package's evaluator (batch size 250 divides the 10,000 images; argmax of "
            "`predict` gave the same count) when converting, and reproduced with:",
            "",
            "```bash",
            evaluate_command,
            "```",
        ]
    if command:
        lines += ["", "Converted with:", "", "```bash", command, "```"]
    lines += [
        "",
        "## License",
        "",
        f"The weights are redistributed under upstream's BSD-2-Clause licence ({SOURCE_URL}/"
        f"blob/{SOURCE_COMMIT}/LICENSE):",
        "",
        "```text",
        LICENSE_TEXT.rstrip("\n"),
        "```",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    """Command line: ``convert_pytorch_cifar.py SOURCE --depth N --output DIR [--data DATA]
    [--overwrite]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a pytorch_resnet_cifar10 .th file")
    parser.add_argument("--depth", type=int, required=True, help="20, 32, 44 or 56 (6n+2)")
    parser.add_argument("--output", required=True, help="checkpoint directory to write")
    parser.add_argument("--data", help="CIFAR-10 image folder or .tar.gz: measure test accuracy")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace a checkpoint already at --output"
    )
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    # The card's command says how the files were made; --overwrite changes none of them.
    command = shlex.join(
        [
            "python",
            "scripts/convert_pytorch_cifar.py",
            *[Path(a).name if Path(a).is_file() else a for a in argv if a != "--overwrite"],
        ]
    )
    try:
        path = convert(
            args.source,
            args.depth,
            args.output,
            data=args.data,
            command=command,
            overwrite=args.overwrite,
        )
    except (ValueError, OSError) as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    metadata = json.loads((path / "metadata.json").read_text())
    print(
        json.dumps(
            {"checkpoint": str(path), "sha256": metadata["sha256"], "metrics": metadata["metrics"]}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
