"""Gradient norms of freshly initialized CIFAR nets, layer by layer: why plain-110 diverges.

One batch of random images and labels, the loss of the untrained net in training mode (batch
normalization on batch statistics, as in the first step of training), and the norm of the
loss's gradient with respect to every convolution kernel, from the input to the output. In a
plain net with batch normalization the gradient grows exponentially towards the input, the
deeper the faster (Yang et al. 2019, "A mean field theory of batch normalization"); the
shortcuts of a residual net keep it flat. ``first/last`` is the ratio of the first
convolution's gradient norm to the last one's.

    python -m scripts.gradient_norms plain20 plain56 plain110 resnet110 --figure grads.png

Runs on the TensorFlow and JAX backends.
"""

from __future__ import annotations

import argparse


def gradient_norms(name, batch_size=64, seed=0):
    """The loss and the gradient norm of every convolution kernel (input to output) of
    ``name`` as initialized with ``seed``, on ``batch_size`` random 32x32 images and labels
    of 10 classes, preprocessed as the trainer does (the batch's own channel statistics).

    Returns ``{"model", "loss", "kernels": [(path, norm), ...]}``.
    """
    import keras
    import numpy as np

    from keras_resblocks import create_model
    from keras_resblocks.training.trainer import channel_statistics

    if batch_size < 2:
        raise ValueError(
            f"batch_size must be at least 2 (batch statistics). Received: {batch_size}"
        )
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (batch_size, 32, 32, 3)).astype("uint8")
    labels = rng.integers(0, 10, batch_size)
    keras.utils.set_random_seed(seed)
    model = create_model(
        name,
        num_classes=10,
        classifier_activation=None,
        preprocessing=channel_statistics(pixels),
    )
    x = pixels.astype("float32")
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
    elif backend == "jax":
        import jax

        def compute(trainable):
            logits, _ = model.stateless_call(
                trainable, [v.value for v in model.non_trainable_variables], x, training=True
            )
            return loss_fn(labels, logits)

        loss, grads = jax.value_and_grad(compute)([v.value for v in model.trainable_variables])
    else:
        raise ValueError(
            f"gradient_norms runs on the tensorflow and jax backends. Received: {backend}"
        )
    kernels = [
        (v.path, float(np.linalg.norm(np.asarray(g))))
        for v, g in zip(model.trainable_variables, grads)
        if v.path.endswith("kernel") and len(v.shape) == 4
    ]
    return {"model": name, "loss": float(loss), "kernels": kernels}


def markdown_table(results):
    """One row per model: loss and the first and last convolution's gradient norm."""
    lines = [
        "| model | convolutions | loss | gradient norm, first conv | gradient norm, last conv "
        "| first/last |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        first, last = r["kernels"][0][1], r["kernels"][-1][1]
        lines.append(
            f"| {r['model']} | {len(r['kernels'])} | {r['loss']:.2f} | {first:.3g} | "
            f"{last:.3g} | {first / last:.3g} |"
        )
    return "\n".join(lines)


def plot(results, output):
    """Gradient norm against the convolution's place from the input, log scale."""
    from keras_resblocks.plotting import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for r in results:
        norms = [norm for _, norm in r["kernels"]]
        ax.plot(range(1, len(norms) + 1), norms, label=r["model"], lw=1.6)
    ax.set_yscale("log")
    ax.set_xlabel("convolution (1 = next to the input)")
    ax.set_ylabel("gradient norm of its kernel")
    ax.set_title("Freshly initialized nets, one batch in training mode")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="CIFAR model names (plain110, resnet110, ...)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", default=None, help="also draw the norms, layer by layer")
    args = parser.parse_args(argv)
    results = [gradient_norms(m, args.batch_size, args.seed) for m in args.models]
    print(markdown_table(results))
    if args.figure:
        plot(results, args.figure)
        print(f"figure: {args.figure}")
    return results


if __name__ == "__main__":
    main()
