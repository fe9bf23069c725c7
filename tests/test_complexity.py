"""``imlbench describe``: parameters and FLOPs counted on the picture each policy shapes."""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from imlbench.benchmark.complexity import measure
from imlbench.cli import main
from imlbench.methods.base import InputPolicy, Method, Prediction


class _OneConv(Method):
    """Test method: one 1×1 convolution, 3 → 1 channels, no bias."""

    input_policy: ClassVar[InputPolicy] = InputPolicy("resize", 8)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1, bias=False)

    def predict(self, images, masks=None):
        return Prediction(torch.sigmoid(self.conv(images)))


def test_flops_and_parameters_of_a_known_network():
    got = measure("one_conv", size=100, method=_OneConv())
    assert got.params == 3
    assert got.input_shape == (1, 3, 8, 8)  # the resize policy's size, not the picture's
    assert got.flops == 2 * 3 * 8 * 8  # one multiply-add per weight and output pixel


def test_canvas_and_native_policies_count_what_predict_receives():
    class Canvas(_OneConv):
        input_policy: ClassVar[InputPolicy] = InputPolicy("canvas", 32)

    class Native(_OneConv):
        input_policy: ClassVar[InputPolicy] = InputPolicy("native")

    assert measure("c", size=20, method=Canvas()).input_shape == (1, 3, 32, 32)
    assert measure("n", size=20, method=Native()).input_shape == (1, 3, 20, 20)


def test_describe_command_reports_training_free_methods_without_flops(capsys):
    assert main(["describe", "ela", "--size", "32", "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["methods"][0]["method"] == "ela" and out["methods"][0]["params"] == 0
    assert out["methods"][0]["flops"] is None  # numpy work: nothing for the torch counter
