"""The evaluation loop: input policies, mapping back to ground truth, contract enforcement."""
from typing import ClassVar

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from imlbench.benchmark.runner import PredictionError, crop_to_valid, evaluate_cell
from imlbench.datasets.base import load_mask
from imlbench.methods.base import InputPolicy, Method, Prediction
from imlbench.robustness import parse_spec
from tests.helpers import make_folder_dataset


class MaskEcho(Method):
    """Returns the ground truth it is given (an oracle), under any input policy."""

    needs_ground_truth: ClassVar[bool] = True

    def __init__(self, policy: InputPolicy, downscale: int = 1):
        super().__init__()
        self.policy, self.downscale = policy, downscale

    @property
    def input_policy(self):  # type: ignore[override]
        return self.policy

    def predict(self, images, masks=None):
        m = masks.float()
        if self.downscale > 1:  # e.g. MPC returns 1/4-resolution maps
            m = torch.nn.functional.avg_pool2d(m, self.downscale)
        return Prediction(m)


class Brightness(Method):
    """Map = mean colour (the fabricated tampered regions are bright)."""

    input_policy: ClassVar[InputPolicy] = InputPolicy("native")

    def predict(self, images, masks=None):
        return Prediction(images.mean(1, keepdim=True))


@pytest.mark.parametrize("policy", [InputPolicy("native"), InputPolicy("pad", multiple=16),
                                    InputPolicy("resize", size=64)])
def test_oracle_scores_perfectly_in_every_policy(tmp_path, policy):
    ds = make_folder_dataset(tmp_path)
    res = evaluate_cell(MaskEcho(policy), ds, device="cpu", num_workers=0, progress=False)
    assert res.metrics["pixel_f1"] == pytest.approx(1.0)
    assert res.metrics["pixel_auc"] == pytest.approx(1.0)
    assert res.n_images == 5 and res.n_tampered == 3


def test_low_resolution_output_with_padding_maps_back_to_gt(tmp_path):
    ds = make_folder_dataset(tmp_path, sizes=((32, 48),))
    res = evaluate_cell(MaskEcho(InputPolicy("pad", multiple=32), downscale=4), ds, device="cpu",
                        num_workers=0, progress=False)
    assert res.metrics["pixel_auc"] > 0.95


def test_crop_to_valid_scales_with_output_resolution():
    prob = torch.zeros(1, 16, 16)
    assert crop_to_valid(prob, (40, 56), (64, 64)).shape == (1, 10, 14)


def test_geometry_changing_perturbation_is_mapped_back_to_gt_shape(tmp_path):
    ds = make_folder_dataset(tmp_path)
    seen = []

    class Spy(Brightness):
        def predict(self, images, masks=None):
            seen.append(tuple(images.shape[-2:]))
            return super().predict(images)

    evaluate_cell(Spy(), ds, perturbation=parse_spec("resize:0.5"), device="cpu", num_workers=0,
                  progress=False, save_predictions=tmp_path / "pred")
    for s in ds.samples:
        prob = np.load(tmp_path / "pred" / f"{s.image_path.stem}.npy")
        h, w = load_mask(s.mask_path, None).shape if s.mask_path else prob.shape
        assert prob.shape == (h, w)
    assert (12, 16) in seen  # 24x32 halved


def test_saved_predictions_reproduce_metrics_exactly(tmp_path):
    from imlbench.metrics import MetricSuite, ScoredImage

    ds = make_folder_dataset(tmp_path)
    res = evaluate_cell(Brightness(), ds, device="cpu", num_workers=0, progress=False,
                        save_predictions=tmp_path / "pred")
    suite = MetricSuite()
    for s in ds.samples:
        prob = np.load(tmp_path / "pred" / f"{s.image_path.stem}.npy")
        mask = load_mask(s.mask_path, prob.shape)
        suite.update(ScoredImage(s.sample_id, prob, mask, s.label, float(prob.max())))
        if s.label:
            assert roc_auc_score(mask.ravel(), prob.ravel()) > 0.9
    assert suite.compute() == pytest.approx(res.metrics, nan_ok=True)


def test_workers_do_not_change_results(tmp_path):
    ds = make_folder_dataset(tmp_path)
    a = evaluate_cell(Brightness(), ds, device="cpu", num_workers=0, progress=False,
                      perturbation=parse_spec("gaussian_noise:5"))
    b = evaluate_cell(Brightness(), ds, device="cpu", num_workers=2, progress=False,
                      perturbation=parse_spec("gaussian_noise:5"))
    assert a.metrics == pytest.approx(b.metrics, nan_ok=True)


@pytest.mark.parametrize("bad, match", [
    (lambda x: torch.full_like(x[:, :1], float("nan")), "NaN"),
    (lambda x: x[:, :1] * 3, r"\[0, 1\]"),
    (lambda x: x[:, :1][1:], "maps for"),
])
def test_contract_violations_are_errors_not_scores(tmp_path, bad, match):
    ds = make_folder_dataset(tmp_path, sizes=((16, 16),))

    class Bad(Method):
        input_policy: ClassVar[InputPolicy] = InputPolicy("resize", size=16)

        def predict(self, images, masks=None):
            return Prediction(bad(images))

    with pytest.raises(PredictionError, match=match):
        evaluate_cell(Bad(), ds, device="cpu", num_workers=0, batch_size=2, progress=False)
