"""Which oneDNN kernels a TensorFlow training step of ResNet-20 runs, and their time.

    ONEDNN_VERBOSE=1 python benchmarks/onednn_profile.py mixed_bfloat16 2>/dev/null \
        | python benchmarks/onednn_profile.py --summarize

The first form trains two steps to compile, prints a marker, then trains two more steps
(batch 128, random data) while oneDNN logs every primitive it executes. The second sums
the logged milliseconds per (primitive, implementation), largest first.
"""

import sys


def summarize(lines):
    """``{(primitive, implementation, direction): [milliseconds, calls]}`` of the exec lines after the marker."""
    totals, started = {}, False
    for line in lines:
        if line.startswith("STEPS-DONE"):
            started = True
        elif started and line.startswith("onednn_verbose,") and ",exec," in line:
            fields = line.rstrip().split(",")
            kind = (fields[5], fields[6], fields[7])  # primitive, implementation, direction
            entry = totals.setdefault(kind, [0.0, 0])
            entry[0] += float(fields[-1])
            entry[1] += 1
    return totals


def main(argv):
    if argv[:1] == ["--summarize"]:
        totals = summarize(sys.stdin)
        whole = sum(ms for ms, _ in totals.values()) or 1.0
        for (primitive, implementation, direction), (ms, calls) in sorted(
            totals.items(), key=lambda kv: -kv[1][0]
        ):
            print(
                f"{ms:8.1f} ms {100 * ms / whole:5.1f}% {calls:4d} calls  {primitive} {direction} {implementation}"
            )
        return 0
    import keras
    import numpy as np

    keras.config.set_dtype_policy(argv[0] if argv else "float32")
    from keras_resblocks.models import create_model

    net = create_model(
        "resnet20", num_classes=10, input_shape=(32, 32, 3), classifier_activation=None
    )
    net.compile(
        keras.optimizers.SGD(0.1, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = np.random.rand(256, 32, 32, 3).astype("float32")
    y = np.random.randint(0, 10, 256)
    net.fit(x, y, batch_size=128, epochs=1, verbose=0)
    print("STEPS-DONE", flush=True)
    net.fit(x, y, batch_size=128, epochs=1, verbose=0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
