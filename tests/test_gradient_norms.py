"""scripts/gradient_norms.py: the measurement behind "plain-110 diverges" in docs/cifar10.md."""

import pytest


from scripts.gradient_norms import gradient_norms, main


def _ratio(result):
    return result["kernels"][0][1] / result["kernels"][-1][1]


def test_plain_gradients_grow_towards_the_input_and_residual_ones_do_not():
    plain, residual = gradient_norms("plain56", batch_size=8), gradient_norms("resnet56", 8)
    assert len(plain["kernels"]) == len(residual["kernels"]) == 55
    assert plain["kernels"][0][0].startswith("stem")
    # Measured at batch 64 (docs/cifar10.md): 1.8e3 against 6.3; the margin is wide.
    assert _ratio(plain) > 100 and _ratio(residual) < 30, (_ratio(plain), _ratio(residual))


def test_table_and_figure(tmp_path, capsys):
    figure = tmp_path / "grads.png"
    results = main(["plain20", "resnet20", "--batch-size", "4", "--figure", str(figure)])
    out = capsys.readouterr().out
    assert [r["model"] for r in results] == ["plain20", "resnet20"]
    rows = [line for line in out.splitlines() if line.startswith("| plain20 |")]
    assert len(rows) == 1 and rows[0].split("|")[2].strip() == "19", out
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_batch_of_one_is_refused():
    with pytest.raises(ValueError, match="Received: 1"):
        gradient_norms("resnet20", batch_size=1)
