"""Training recipes: named, JSON-able sets of hyper-parameters and their schedules."""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Tuple


SCHEDULES = ("step", "cosine", "constant")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How to train: optimizer, learning-rate schedule, length and augmentation.

    Lengths are in iterations (optimizer updates) when ``iterations`` is set,
    otherwise in ``epochs``; an epoch is ``len(train) // batch_size``
    iterations (the last partial batch is dropped, so every step sees a full
    batch). The learning-rate schedule always counts iterations.

    Fields:
        name: the preset this recipe started from (recorded with the model).
        batch_size, learning_rate, momentum, nesterov: SGD settings.
        weight_decay: coupled L2 weight decay (added to the loss as
            ``weight_decay / 2 * ||w||^2`` through the architecture's
            ``kernel_l2``, as in the paper's Torch/Caffe code).
        schedule: ``"step"`` (multiply by ``lr_factor`` at each of
            ``lr_boundaries``), ``"cosine"`` (cosine decay to 0 over the run)
            or ``"constant"``.
        iterations / epochs: the length of the run; ``iterations`` wins when
            both are set (a resolved recipe records both).
        warmup_iterations, warmup_lr: train the first ``warmup_iterations``
            iterations at ``warmup_lr`` (step schedule: constant warm-up, as the
            paper does for ResNet-110; cosine schedule: linear ramp from
            ``warmup_lr``). ``warmup_iterations=-1`` means "400 if the network
            has 110 layers or more, else 0" (the paper's rule). A resolved
            recipe caps the warm-up at a tenth of the run's iterations.
        crop_padding: pad by this many pixels and crop back at random (0: off).
        flip: random horizontal flips.
        label_smoothing: mix this much of the uniform distribution into the
            one-hot targets of the training loss (0: plain cross-entropy).
        validation: training images held out for validation; capped at a
            tenth of the training set so small datasets keep most of it.

    Example:

    >>> from keras_resblocks.training import get_recipe
    >>> r = get_recipe("he2015", batch_size=64)
    >>> r.batch_size, r.learning_rate, r.lr_boundaries, r.iterations
    (64, 0.1, (32000, 48000), 64000)
    """

    name: str
    batch_size: int = 128
    learning_rate: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    schedule: str = "step"
    lr_boundaries: Tuple[int, ...] = ()
    lr_factor: float = 0.1
    iterations: Optional[int] = None
    epochs: Optional[int] = None
    warmup_iterations: int = 0
    warmup_lr: float = 0.01
    crop_padding: int = 4
    flip: bool = True
    label_smoothing: float = 0.0
    validation: int = 5000

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"`schedule` must be one of {list(SCHEDULES)}. Received: schedule={self.schedule!r}"
            )
        object.__setattr__(self, "lr_boundaries", tuple(int(b) for b in self.lr_boundaries))
        if list(self.lr_boundaries) != sorted(set(self.lr_boundaries)) or any(
            b <= 0 for b in self.lr_boundaries
        ):
            raise ValueError(
                "`lr_boundaries` must be increasing positive iteration counts. "
                f"Received: lr_boundaries={list(self.lr_boundaries)}"
            )
        if self.iterations is None and self.epochs is None:
            raise ValueError(
                "Give `iterations` or `epochs` (iterations win if both are set). Received: "
                f"iterations={self.iterations!r}, epochs={self.epochs!r}"
            )
        for field in ("batch_size", "iterations", "epochs"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(
                    f"`{field}` must be a positive integer. Received: {field}={value!r}"
                )
        for field in ("crop_padding", "validation"):
            if not isinstance(getattr(self, field), int) or getattr(self, field) < 0:
                raise ValueError(
                    f"`{field}` must be an integer >= 0. Received: {field}={getattr(self, field)!r}"
                )
        if not isinstance(self.warmup_iterations, int) or self.warmup_iterations < -1:
            raise ValueError(
                "`warmup_iterations` must be >= 0, or -1 for the paper's rule. "
                f"Received: warmup_iterations={self.warmup_iterations!r}"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(
                "`label_smoothing` must be in [0, 1). "
                f"Received: label_smoothing={self.label_smoothing!r}"
            )
        if self.learning_rate <= 0 or self.weight_decay < 0:
            raise ValueError(
                "`learning_rate` must be positive and `weight_decay` >= 0. Received: "
                f"learning_rate={self.learning_rate!r}, weight_decay={self.weight_decay!r}"
            )

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["lr_boundaries"] = list(d["lr_boundaries"])
        return d

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def resolve(self, depth, steps_per_epoch):
        """The recipe with the run's length fixed in both units and warm-up decided.

        Example:

        >>> from keras_resblocks.training import get_recipe
        >>> r = get_recipe("he2015").resolve(depth=110, steps_per_epoch=351)
        >>> r.epochs, r.iterations, r.warmup_iterations
        (183, 64000, 400)
        """
        warmup = self.warmup_iterations
        if warmup == -1:
            warmup = 400 if depth >= 110 else 0
        if self.iterations is not None:
            epochs = math.ceil(self.iterations / steps_per_epoch)
            iterations = self.iterations
        else:
            epochs = self.epochs
            iterations = self.epochs * steps_per_epoch
        # A warm-up is a small part of a run: at most a tenth of a short one.
        warmup = min(warmup, iterations // 10)
        return self.replace(epochs=epochs, iterations=iterations, warmup_iterations=warmup)


PRESETS = {
    # He et al. 2015, section 4.2: SGD, batch 128, weight decay 1e-4, momentum 0.9,
    # lr 0.1 divided by 10 at 32k and 48k iterations, stop at 64k, 45k/5k split,
    # 4-pixel pad + random crop + flip; 0.01 warm-up for 400 iterations at 110 layers.
    "he2015": dict(
        schedule="step",
        lr_boundaries=(32000, 48000),
        iterations=64000,
        warmup_iterations=-1,
    ),
    # For shorter runs: the same optimizer, a cosine schedule counted in epochs.
    "cosine": dict(schedule="cosine", epochs=30),
    # Short runs on a CPU budget (chosen by the ablation in docs/training.md): a
    # linear warm-up then cosine decay that reaches 0 exactly at the last
    # iteration, SGD with Nesterov momentum, weight decay 5e-4; the same for
    # every net, so plain and residual nets compare on equal terms. Label
    # smoothing 0.1 gave nothing in the ablation, so it stays off.
    "budget": dict(
        schedule="cosine",
        epochs=30,
        batch_size=128,
        learning_rate=0.1,
        nesterov=True,
        weight_decay=5e-4,
        warmup_iterations=400,
        warmup_lr=0.01,
    ),
    # The offline default on scikit-learn's digits: about a minute on a CPU.
    # No flips: a mirrored digit is another symbol.
    "quick": dict(
        schedule="cosine",
        epochs=8,
        batch_size=64,
        learning_rate=0.05,
        weight_decay=5e-4,
        flip=False,
        crop_padding=2,
    ),
}


def list_recipes():
    """Names of the preset recipes.

    Example:

    >>> from keras_resblocks.training import list_recipes
    >>> list_recipes()
    ['budget', 'cosine', 'he2015', 'quick']
    """
    return sorted(PRESETS)


def get_recipe(name, **overrides):
    """A preset :class:`Recipe` with some fields overridden (``None`` values are ignored).

    Setting ``epochs`` on an iteration-counted preset (or the reverse) switches
    the unit.

    Example:

    >>> from keras_resblocks.training import get_recipe
    >>> get_recipe("he2015", epochs=2).iterations is None
    True
    """
    if name not in PRESETS:
        raise ValueError(
            f"Unknown recipe; choose one of {list_recipes()}. Received: recipe={name!r}"
        )
    fields = dict(PRESETS[name], name=name)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "epochs" in overrides:
        fields.pop("iterations", None)
    if "iterations" in overrides:
        fields.pop("epochs", None)
    fields.update(overrides)
    return Recipe(**fields)


def learning_rate_schedule(recipe):
    """The Keras schedule of a resolved recipe, a function of the iteration index.

    The optimizer evaluates it at its ``iterations`` counter, so the update
    with 0-based index ``i`` uses ``schedule(i)``: with the he2015 recipe and
    warm-up, updates 0..399 use 0.01, 400..31999 use 0.1, 32000..47999 use
    0.01, and 48000 on use 0.001.

    Example:

    >>> from keras_resblocks.training import get_recipe, learning_rate_schedule
    >>> r = get_recipe("he2015", warmup_iterations=400).resolve(20, 351)
    >>> lr = learning_rate_schedule(r)
    >>> [round(float(lr(i)), 6) for i in (399, 400, 31999, 32000, 47999, 48000)]
    [0.01, 0.1, 0.1, 0.01, 0.01, 0.001]
    """
    import keras

    base = recipe.learning_rate
    warmup = recipe.warmup_iterations
    if recipe.schedule == "cosine":
        if warmup:
            return keras.optimizers.schedules.CosineDecay(
                recipe.warmup_lr,
                decay_steps=max(recipe.iterations - warmup, 1),
                warmup_target=base,
                warmup_steps=warmup,
            )
        return keras.optimizers.schedules.CosineDecay(base, decay_steps=recipe.iterations)
    # Piecewise-constant covers the step schedule and a constant warm-up; its
    # intervals are closed on the right (step <= boundary), hence the -1.
    boundaries, values = [], []
    if warmup:
        boundaries.append(warmup - 1)
        values.append(recipe.warmup_lr)
    if recipe.schedule == "step":
        for i, b in enumerate(recipe.lr_boundaries):
            if b > warmup:
                boundaries.append(b - 1)
                values.append(base * recipe.lr_factor**i)
        values.append(base * recipe.lr_factor ** len(recipe.lr_boundaries))
    else:
        values.append(base)
    if not boundaries:
        return base
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
