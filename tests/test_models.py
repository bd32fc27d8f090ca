"""The ResNet builder and every named model."""

import functools
import hashlib
import json
import pathlib

import numpy as np
import keras
import pytest

import keras_resblocks as kr
from keras_resblocks import Architecture, ResNet, create_model, list_models
from tests._helpers import keras_round_trip, weight_signature

GOLDEN = pathlib.Path(__file__).parent / "golden" / "weight_paths.json"
CIFAR = [
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "resnet1202",
    "plain20",
    "plain32",
    "plain44",
    "plain56",
    "plain110",
]
IMAGENET = [
    "resnet18",
    "resnet34",
    "plain18",
    "plain34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnet50v2",
    "resnet101v2",
    "resnet152v2",
    "resnet26",
    "resnet18d",
    "resnet34d",
    "resnet26d",
    "resnet50d",
    "resnet101d",
    "resnet152d",
]
TINY = Architecture(stage_depths=[1, 1], stage_widths=[4, 8], stage_strides=[1, 2])


@functools.lru_cache(maxsize=None)
def built(name):
    """Each named model is built once per test process: building the large ones is slow."""
    return create_model(name)


def test_every_name_is_listed_and_has_a_constructor():
    assert sorted(list_models()) == sorted(CIFAR + IMAGENET)
    for name in list_models():
        constructor = getattr(kr, kr.variants.CONSTRUCTOR_NAMES[name])
        assert constructor.__name__ == kr.variants.CONSTRUCTOR_NAMES[name]


# He et al. 2015, table 6 (parameters in millions, as printed there).
@pytest.mark.parametrize(
    "name, millions",
    [
        ("resnet20", 0.27),
        ("resnet32", 0.46),
        ("resnet44", 0.66),
        ("resnet56", 0.85),
        ("resnet110", 1.7),
    ],
)
def test_cifar_parameter_counts_match_the_paper(name, millions):
    # The paper counts learned parameters; BatchNorm's moving statistics are not.
    model = built(name)
    digits = len(str(millions).split(".")[1])
    assert round(_trainable(model) / 1e6, digits) == millions
    plain = name.replace("resnet", "plain")
    # option A shortcuts have no parameters
    assert built(plain).count_params() == model.count_params()


def test_resnet1202_parameter_count_matches_the_paper():
    # Building 1,202 layers takes a minute; parameter_count() is held equal to
    # count_params() for every other model (and for this one with --large).
    arch = Architecture(**kr.variants.ARCHITECTURES["resnet1202"])
    moving_statistics = 2 * (16 + 2 * 200 * (16 + 32 + 64))
    assert round((kr.parameter_count(arch) - moving_statistics) / 1e6, 1) == 19.4


@pytest.mark.large
def test_resnet1202_built():
    model = built("resnet1202")
    assert round(_trainable(model) / 1e6, 1) == 19.4
    assert kr.parameter_count(model.architecture) == model.count_params()


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("name, trainable", [("resnet18", 11_689_512), ("resnet34", 21_797_672)])
def test_basic_imagenet_models_match_torchvision(name, trainable):
    # torchvision counts parameters only; BatchNorm's moving statistics are buffers there.
    assert _trainable(built(name)) == trainable


# The deep stem (3x3 convs 3->32->32->64 and two more BatchNorms) replaces the 7x7 conv
# (3->64): 864 + 9,216 + 18,432 + 2 * 64 - 9,408 = 19,232 more parameters; average-pooling
# shortcuts add none.
DEEP_STEM_EXTRA = 19_232


def test_timm_bottleneck_and_resnet_d_parameter_counts():
    from keras_resblocks.variants import TIMM_BOTTLENECK_CHANGES

    # timm's (torchvision's) resnet50: 25,557,032 parameters.
    timm50 = Architecture.named("resnet50", **TIMM_BOTTLENECK_CHANGES)
    assert _trainable(ResNet(timm50)) == 25_557_032
    assert _trainable(built("resnet50d")) == 25_557_032 + DEEP_STEM_EXTRA
    assert _trainable(built("resnet18d")) == 11_689_512 + DEEP_STEM_EXTRA
    assert _trainable(built("resnet34d")) == 21_797_672 + DEEP_STEM_EXTRA
    assert built("resnet50d").architecture.to_dict()["avg_down"] is True


DEEP = {
    "resnet101",
    "resnet152",
    "resnet101v2",
    "resnet152v2",
    "resnet101d",
    "resnet152d",
    "resnet1202",
}


def _large_if_deep(names):
    """The deepest models repeat the code paths of their shallower twins at several
    times the build cost; they run with --large."""
    return [pytest.param(n, marks=pytest.mark.large) if n in DEEP else n for n in names]


@pytest.mark.parametrize(
    "name, reference",
    [
        ("resnet50", "ResNet50"),
        ("resnet50v2", "ResNet50V2"),
        pytest.param("resnet101", "ResNet101", marks=pytest.mark.large),
        pytest.param("resnet152", "ResNet152", marks=pytest.mark.large),
        pytest.param("resnet101v2", "ResNet101V2", marks=pytest.mark.large),
        pytest.param("resnet152v2", "ResNet152V2", marks=pytest.mark.large),
    ],
)
def test_bottleneck_models_have_keras_applications_parameter_counts(name, reference):
    theirs = getattr(keras.applications, reference)(weights=None)
    ours = kr.parameter_count(Architecture(**kr.variants.ARCHITECTURES[name]))
    assert ours == theirs.count_params()
    if name == "resnet50":
        assert built(name).count_params() == 25_636_712


@pytest.mark.parametrize("name", _large_if_deep(sorted(CIFAR + IMAGENET)))
def test_named_model_keras_round_trip(name, tmp_path):
    model = built(name)
    x = np.random.default_rng(0).uniform(0, 1, (1, *model.image_shape)).astype("float32")
    loaded = keras_round_trip(model, x, tmp_path)
    assert isinstance(loaded, ResNet)
    assert loaded.get_config() == model.get_config()


@pytest.mark.parametrize("name", _large_if_deep(sorted(CIFAR + IMAGENET)))
def test_weight_paths_are_frozen(name):
    """Renaming a layer attribute would break every published checkpoint.

    If this fails because of a deliberate change, regenerate the golden file with
    ``python -m tests.golden.update`` and say in the changelog that old checkpoints break.
    """
    golden = json.loads(GOLDEN.read_text())
    signature = weight_signature(built(name))
    if name in golden["full"]:
        assert signature == golden["full"][name]
    assert hashlib.sha256("\n".join(signature).encode()).hexdigest() == golden["sha256"][name]


@pytest.mark.parametrize("name", _large_if_deep(sorted(CIFAR + IMAGENET)))
def test_parameter_count_without_building_matches_count_params(name):
    model = built(name)
    assert kr.parameter_count(model.architecture) == model.count_params()
    assert kr.parameter_count(model.architecture, num_classes=3) == (
        model.count_params()
        - model.get_layer("predictions").count_params()
        + model.get_layer("predictions").kernel.shape[0] * 3
        + 3
    )


def test_weight_paths_are_unique():
    for name in ["resnet20", "resnet50v2", "plain34"]:
        paths = [w.path for w in create_model(name).weights]
        assert len(paths) == len(set(paths))


def test_config_is_json_and_rebuilds_the_model():
    model = create_model(
        "resnet20",
        num_classes=7,
        preprocessing={"scale": 1 / 255, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
    )
    config = json.loads(json.dumps(model.get_config()))
    rebuilt = ResNet.from_config(config)
    assert rebuilt.get_config() == model.get_config()
    assert rebuilt.count_params() == model.count_params()


def test_preprocessing_takes_raw_pixels():
    pre = {"scale": 1 / 255, "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]}
    with_pre = ResNet(TINY, input_shape=(8, 8, 3), preprocessing=pre)
    without = ResNet(TINY, input_shape=(8, 8, 3))
    without.set_weights(with_pre.get_weights())
    raw = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype("float32")
    normalized = (raw / 255 - np.array(pre["mean"])) / np.array(pre["std"])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(with_pre(raw)),
        keras.ops.convert_to_numpy(without(normalized.astype("float32"))),
        rtol=1e-4,
        atol=1e-5,
    )


def test_heads_and_pooling():
    x = np.zeros((2, 16, 16, 3), "float32")
    assert tuple(ResNet(TINY, input_shape=(16, 16, 3), num_classes=5)(x).shape) == (2, 5)
    assert tuple(ResNet(TINY, input_shape=(16, 16, 3), include_top=False)(x).shape) == (2, 8, 8, 8)
    for pooling in ("avg", "max"):
        model = ResNet(TINY, input_shape=(16, 16, 3), include_top=False, pooling=pooling)
        assert tuple(model(x).shape) == (2, 8)
    logits = ResNet(TINY, input_shape=(16, 16, 3), classifier_activation=None)
    assert not np.allclose(keras.ops.convert_to_numpy(logits(x + 1)).sum(-1), 1.0)
    probabilities = ResNet(TINY, input_shape=(16, 16, 3))(x + 1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(probabilities).sum(-1), 1.0, rtol=1e-5)


def test_input_tensor_and_any_input_size():
    tensor = keras.Input((24, 24, 3))
    model = ResNet(TINY, input_tensor=tensor, num_classes=3)
    assert model.inputs[0] is tensor
    flexible = create_model("resnet20", input_shape=(None, None, 3))
    assert tuple(flexible(np.zeros((1, 40, 48, 3), "float32")).shape) == (1, 10)


def test_feature_extractor_returns_every_stage():
    model = create_model("resnet50v2", input_shape=(64, 64, 3), include_top=False)
    features = kr.feature_extractor(model)
    out = features(np.zeros((1, 64, 64, 3), "float32"))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "stem": (1, 16, 16, 64),
        "stage1": (1, 8, 8, 256),
        "stage2": (1, 4, 4, 512),
        "stage3": (1, 2, 2, 1024),
        "stage4": (1, 2, 2, 2048),
    }
    some = kr.feature_extractor(model, stages=["stage2"])
    assert list(some(np.zeros((1, 64, 64, 3), "float32"))) == ["stage2"]
    with pytest.raises(ValueError, match="stage9"):
        kr.feature_extractor(model, stages=["stage9"])


def test_overrides_change_the_architecture():
    projected = create_model("resnet20", shortcut="projection")
    assert projected.count_params() > create_model("resnet20").count_params()
    assert projected.architecture.shortcut == "projection"
    assert create_model("resnet20", num_classes=100).output_shape == (None, 100)


def test_architecture_json_round_trip_and_strict_parsing():
    arch = create_model("resnet50v2").architecture
    assert Architecture.from_dict(json.loads(arch.to_json())) == arch
    with pytest.raises(ValueError, match="Unknown architecture field"):
        Architecture.from_dict(dict(arch.to_dict(), module="os"))


BAD = [
    (lambda: kr.cifar_architecture(21), "depth=21"),
    (lambda: kr.cifar_architecture(2), "depth=2"),
    (lambda: Architecture([1], [0], [1]), "stage_widths=[0]"),
    (lambda: Architecture([1, 1], [4], [1]), "stage_widths=[4]"),
    (lambda: Architecture([1], [4], [1], block="dense"), "block='dense'"),
    (lambda: Architecture([1], [4], [1], shortcut="magic"), "shortcut='magic'"),
    (lambda: Architecture([1], [4], [1], stem="vit"), "stem='vit'"),
    (
        lambda: Architecture([1], [4], [1], block="plain", zero_init_last=True),
        "zero_init_last=True",
    ),
    (
        lambda: ResNet(Architecture([1, 1], [4, 8], [1, 2], shortcut="identity")),
        "shortcut='identity'",
    ),
    (lambda: create_model("resnet50", input_shape=(16, 16, 3)), "input_shape=(16, 16, 3)"),
    (lambda: create_model("resnet20", input_shape=(32, 32)), "input_shape=(32, 32)"),
    (lambda: create_model("resnet20", input_shape=(32, 32, None)), "input_shape=(32, 32, None)"),
    (lambda: create_model("resnet20", num_classes=0), "num_classes=0"),
    (lambda: create_model("resnet20", pooling="mean"), "pooling='mean'"),
    (lambda: create_model("resnet21"), "name='resnet21'"),
    (lambda: create_model("resnet20", preprocessing={"mean": [0.5]}), "preprocessing="),
]


@pytest.mark.parametrize("make, message", BAD, ids=[m for _, m in BAD])
def test_bad_arguments_raise_value_error_naming_the_value(make, message):
    with pytest.raises(ValueError, match="Received") as info:
        make()
    assert message in str(info.value)


def test_an_unknown_architecture_suggests_the_closest_names():
    with pytest.raises(
        ValueError,
        match=r"Unknown model name 'resnet5O'\. Did you mean [^?]*'resnet50'"
        r".*`keras-resblocks list`",
    ):
        create_model("resnet5O")


@pytest.mark.parametrize(
    "name,input_shape",
    [
        *(
            pytest.param(n, None, marks=pytest.mark.large) if n in DEEP else (n, None)
            for n in sorted(CIFAR + IMAGENET)
        ),
        ("resnet18", (160, 120, 3)),  # odd sizes: every strided layer rounds up
        ("resnet50v2", (97, 97, 3)),
        ("resnet20", (33, 31, 3)),
        ("resnet18d", (65, 63, 3)),  # the deep stem and average-pooling shortcuts
        ("resnet26d", (97, 95, 3)),
    ],
)
def test_multiply_accumulates_equal_a_count_over_the_built_layers(name, input_shape):
    from benchmarks.flops import forward_macs
    from keras_resblocks.architecture import multiply_accumulates

    model = kr.create_model(name, input_shape=input_shape)
    counted = forward_macs(model)
    assert multiply_accumulates(model.architecture, input_shape=input_shape) == counted


def test_overrides_meet_the_bounds_of_a_checkpoint_config_before_anything_is_built():
    import time

    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"Unknown argument\(s\) \['class_name'\]: neither"):
        kr.create_model("resnet20", class_name="Lambda")
    with pytest.raises(ValueError, match="asks for 100,006 blocks, beyond the limit of 1,024"):
        kr.create_model("resnet20", stage_depths=[100000, 3, 3])
    with pytest.raises(ValueError, match="beyond the limit of 100,000"):
        kr.create_model("resnet20", num_classes=10**9)
    assert time.perf_counter() - start < 2


def test_a_deep_net_builds_whatever_python_s_recursion_limit():
    """Keras walks a functional graph recursively, about a frame per layer, so 1,024 blocks
    (the limit of a checkpoint's config) fail at Python's default limit of 1,000 (measured:
    a RecursionError after 16 s); the builder raises the limit while it builds. Here the same
    failure at a quarter of the size: 300 blocks, with room for only 150 more frames."""
    import inspect
    import sys

    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 150)
    try:
        arch = Architecture(
            stage_depths=[150, 150], stage_widths=[1, 1], stem_width=1, stage_strides=[1, 1]
        )
        model = kr.ResNet(arch, num_classes=2, input_shape=(4, 4, 1))
    finally:
        sys.setrecursionlimit(previous)
    assert len(model.layers) > 300


@pytest.mark.large
def test_a_net_of_as_many_blocks_as_a_config_may_have_builds():
    """1,024 blocks: about 11 s to build on 2 cores."""
    arch = Architecture(
        stage_depths=[340, 340, 344], stage_widths=[1, 1, 1], stem_width=1, stage_strides=[1, 1, 1]
    )
    assert len(kr.ResNet(arch, num_classes=2, input_shape=(4, 4, 1)).layers) > 1024
