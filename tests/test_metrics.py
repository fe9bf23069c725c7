"""Metrics: equality with scikit-learn on random and adversarial maps, edge cases, validation,
and the streaming contract (shards, order, state round trip) for every registered metric."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import (balanced_accuracy_score, f1_score, jaccard_score, matthews_corrcoef,
                             precision_recall_curve, roc_auc_score)

from imlbench.metrics import METRIC_NAMES, Metric, MetricInputError, MetricSuite, ScoredImage
from imlbench.metrics.pixel import POOLED_AUC_EDGES
from imlbench.metrics.ranking import Ranking
from imlbench.registry import METRICS


# -- data -------------------------------------------------------------------------------------
def _blob_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """bool [h, w]: one random ellipse, the typical shape of a spliced object."""
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry, rx = rng.uniform(1, h / 2 + 1), rng.uniform(1, w / 2 + 1)
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def _soft_map(rng: np.random.Generator, mask: np.ndarray, scale: float = 3.0,
              noise: float = 2.0) -> np.ndarray:
    """float32 map = sigmoid(scale · (±1 by class) + noise): a plausible detector output."""
    logit = scale * (2 * mask - 1.0) + rng.normal(0, noise, mask.shape)
    return (1 / (1 + np.exp(-logit))).astype(np.float32)


def make_images(seed: int = 0) -> list[ScoredImage]:
    """Random and adversarial images, tampered and authentic, with tied image scores."""
    rng = np.random.default_rng(seed)
    items: list[tuple[np.ndarray, np.ndarray, int]] = []  # (prob, mask, label)
    for _ in range(4):  # continuous maps
        h, w = rng.integers(8, 33, size=2)
        mask = _blob_mask(rng, h, w)
        items.append((_soft_map(rng, mask), mask, 1))
    mask = _blob_mask(rng, 20, 17)  # heavy ties: 5 levels, including exactly the threshold 0.5
    items.append((rng.choice(np.float32([0, 0.25, 0.5, 0.75, 1]), mask.shape), mask, 1))
    mask = _blob_mask(rng, 12, 12)
    for value in (0.0, 0.5, 1.0):  # constant predictions
        items.append((np.full(mask.shape, value, np.float32), mask, 1))
    items.append((np.float32([[0.7]]), np.array([[True]]), 1))    # 1x1, full mask
    items.append((np.float32([[0.7]]), np.array([[False]]), 1))   # 1x1, empty "tampered" mask
    single = np.zeros((9, 11), bool)
    single[4, 6] = True
    items.append((rng.random(single.shape).astype(np.float32), single, 1))  # single-pixel mask
    items.append((rng.random((10, 10)).astype(np.float32), np.zeros((10, 10), bool), 1))  # empty
    items.append((rng.random((7, 5)).astype(np.float32), np.ones((7, 5), bool), 1))       # full
    neg_zero = _soft_map(rng, _blob_mask(rng, 10, 10))
    neg_zero[:3] = -0.0  # must sort and threshold exactly like +0.0
    items.append((neg_zero, _blob_mask(rng, 10, 10), 1))
    for _ in range(4):  # authentic
        h, w = rng.integers(1, 25, size=2)
        items.append((_soft_map(rng, np.zeros((h, w), bool), scale=2.0), np.zeros((h, w), bool), 0))
    scores = rng.choice([0.2, 0.5, 0.6, 0.9], size=len(items))  # ties, and 0.5 exactly
    return [ScoredImage(f"img{i}", prob, mask, label, float(score))
            for i, ((prob, mask, label), score) in enumerate(zip(items, scores))]


def realistic_images(seed: int, n: int = 6, size: int = 64, scale: float = 3.0,
                     noise: float = 2.0) -> list[ScoredImage]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        mask = _blob_mask(rng, size, size)
        prob = _soft_map(rng, mask, scale, noise)
        out.append(ScoredImage(f"r{i}", prob, mask, 1, float(prob.max())))
    return out


# -- scikit-learn references ------------------------------------------------------------------
def _best_f1(mask: np.ndarray, prob: np.ndarray) -> float:
    precision, recall, _ = precision_recall_curve(mask, prob)
    denom = precision + recall
    return float(np.max(np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0)))


def sklearn_metrics(images: list[ScoredImage], include_authentic: bool, t: float) -> dict[str, float]:
    """Every metric computed the way a user would, with scikit-learn, image by image."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on the 0/0 cases we test on purpose
        scored = [im for im in images if im.label == 1 or include_authentic]
        per_image: dict[str, list[float]] = {
            k: [] for k in ("pixel_f1", "pixel_iou", "pixel_mcc", "pixel_f1_best", "pixel_auc")}
        for im in scored:
            y, p = im.mask.ravel(), im.prob.ravel()
            per_image["pixel_f1"].append(f1_score(y, p > t, zero_division=0))
            per_image["pixel_iou"].append(jaccard_score(y, p > t, zero_division=0))
            per_image["pixel_mcc"].append(matthews_corrcoef(y, p > t))
            per_image["pixel_f1_best"].append(_best_f1(y, p))
            if 0 < y.sum() < y.size:
                per_image["pixel_auc"].append(roc_auc_score(y, p))
        ref = {k: float(np.mean(v)) if v else math.nan for k, v in per_image.items()}
        ref["pixel_auc_n_undefined"] = float(len(scored) - len(per_image["pixel_auc"]))
        if scored:
            y = np.concatenate([im.mask.ravel() for im in scored])
            p = np.concatenate([im.prob.ravel() for im in scored])
            ref["pixel_f1_pooled"] = f1_score(y, p > t, zero_division=0)
            ref["pixel_auc_pooled"] = roc_auc_score(y, p) if 0 < y.sum() < y.size else math.nan
        else:
            ref["pixel_f1_pooled"] = ref["pixel_auc_pooled"] = math.nan
        authentic = [im.prob.ravel() for im in images if im.label == 0]
        ref["pixel_fpr_authentic"] = (float(np.mean(np.concatenate(authentic) > t)) if authentic
                                      else math.nan)
        labels = np.array([im.label for im in images])
        scores = np.array([im.image_score for im in images])
        ref["image_auc"] = roc_auc_score(labels, scores) if len(set(labels)) == 2 else math.nan
        ref["image_bacc"] = balanced_accuracy_score(labels, scores > t)
        ref["image_f1"] = f1_score(labels, scores > t, zero_division=0)
    return ref


def assert_results_equal(got: dict[str, float], want: dict[str, float], tol: float = 1e-12) -> None:
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=tol, nan_ok=True), key


def run_suite(images, **options) -> MetricSuite:
    suite = MetricSuite(**options)
    for im in images:
        suite.update(im)
    return suite


# -- equality with scikit-learn ---------------------------------------------------------------
@pytest.mark.parametrize("include_authentic", [False, True])
@pytest.mark.parametrize("threshold", [0.5, 0.3])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_metric_equals_sklearn(seed, threshold, include_authentic):
    images = make_images(seed)
    got = run_suite(images, include_authentic=include_authentic, threshold=threshold).compute()
    want = sklearn_metrics(images, include_authentic, threshold)
    bound = got.pop("pixel_auc_pooled_error_bound")
    assert abs(got.pop("pixel_auc_pooled") - want.pop("pixel_auc_pooled")) <= bound + 1e-12
    assert_results_equal(got, want)


def test_tiny_image_by_hand():
    # prob > 0.5 is strict: the 0.5 pixel is not flagged -> tp=1 fp=1 fn=1 tn=1
    prob = np.float32([[0.5, 0.6], [0.2, 0.9]])
    mask = np.array([[True, False], [False, True]])
    got = run_suite([ScoredImage("a", prob, mask, 1, 0.9)]).compute()
    assert got["pixel_f1"] == 0.5 and got["pixel_iou"] == pytest.approx(1 / 3) and got["pixel_mcc"] == 0
    assert got["pixel_auc"] == 0.75  # pairs (pos, neg): 0.5>0.2, 0.5<0.6, 0.9>0.6, 0.9>0.2
    assert got["pixel_f1_best"] == pytest.approx(0.8)  # t = 0.5: tp=2 fp=1 fn=0
    assert got["image_auc"] != got["image_auc"]  # one image label only -> NaN


@pytest.mark.parametrize("seed", range(6))
def test_best_f1_threshold_is_realizable(seed):
    images = make_images(seed) + realistic_images(seed, n=2, size=16)
    for im in images:
        best, t = Ranking(im.prob, im.mask).best_f1()
        if im.mask.any():
            assert f1_score(im.mask.ravel(), im.prob.ravel() >= t) == pytest.approx(best, abs=1e-12)
        else:
            assert best == 0.0 and math.isnan(t)


@pytest.mark.parametrize("scale, noise", [(1, 2), (3, 2), (20, 30)])  # last: saturated, overlapping
def test_pooled_auc_error_is_bounded_on_realistic_maps(scale, noise):
    images = realistic_images(seed=7, scale=scale, noise=noise)
    got = run_suite(images, names=["pixel_auc_pooled"]).compute()
    y = np.concatenate([im.mask.ravel() for im in images])
    p = np.concatenate([im.prob.ravel() for im in images])
    error = abs(got["pixel_auc_pooled"] - roc_auc_score(y, p))
    assert error <= got["pixel_auc_pooled_error_bound"] + 1e-12
    assert got["pixel_auc_pooled_error_bound"] <= 1e-3


def test_pooled_auc_bound_is_tight_when_a_bin_mixes_classes():
    # two values inside one bin, perfectly separated: exact AUC 1, binned 0.5, bound 0.5
    lo = POOLED_AUC_EDGES[1000]
    hi = np.nextafter(lo, np.float32(1))
    assert hi < POOLED_AUC_EDGES[1001]
    im = ScoredImage("x", np.array([[lo, hi]], np.float32), np.array([[False, True]]), 1, 0.5)
    got = run_suite([im], names=["pixel_auc", "pixel_auc_pooled"]).compute()
    assert got["pixel_auc"] == 1.0
    assert got["pixel_auc_pooled"] == 0.5 and got["pixel_auc_pooled_error_bound"] == 0.5


def test_exact_ties_at_zero_and_one_add_no_error():
    prob = np.float32([[0, 0, 1, 1, 0.3]])
    mask = np.array([[True, False, True, False, True]])
    got = run_suite([ScoredImage("t", prob, mask, 1, 1.0)], names=["pixel_auc_pooled"]).compute()
    assert got["pixel_auc_pooled_error_bound"] == 0
    want = roc_auc_score(mask.ravel(), prob.ravel())
    assert got["pixel_auc_pooled"] == pytest.approx(want, abs=1e-12)


def test_no_tampered_images_gives_nan_pixel_metrics():
    authentic = [im for im in make_images(3) if im.label == 0]
    got = run_suite(authentic).compute()
    for name in ("pixel_f1", "pixel_f1_best", "pixel_f1_pooled", "pixel_iou", "pixel_mcc",
                 "pixel_auc", "pixel_auc_pooled", "image_auc"):
        assert math.isnan(got[name]), name
    assert got["pixel_auc_n_undefined"] == 0 and 0 <= got["pixel_fpr_authentic"] <= 1


def test_empty_suite_is_all_nan():
    got = MetricSuite().compute()
    assert all(math.isnan(got[name]) for name in METRIC_NAMES)


def test_undefined_auc_images_are_counted_not_scored():
    images = make_images(0)
    n_single_class = sum(1 for im in images if im.label == 1 and im.mask.all() | ~im.mask.any())
    assert n_single_class >= 4  # 1x1 images, empty and full masks
    got = run_suite(images).compute()
    assert got["pixel_auc_n_undefined"] == n_single_class


def test_default_suite_lists_the_design_names_in_order():
    suite = MetricSuite()
    assert suite.names[: len(METRIC_NAMES)] == METRIC_NAMES
    assert [k for k in suite.compute() if k in METRIC_NAMES] == METRIC_NAMES


def test_unknown_metric_name_suggests_the_closest():
    with pytest.raises(KeyError, match="pixel_f1"):
        MetricSuite(["pixel_f"])


# -- validation -------------------------------------------------------------------------------
def _valid() -> ScoredImage:
    return ScoredImage("cat_17", np.full((4, 4), 0.2, np.float32), np.eye(4, dtype=bool), 1, 0.2)


def _with(**changes) -> ScoredImage:
    fields = {**_valid().__dict__, **changes}
    return ScoredImage(**fields)


def _nan_map():
    prob = _valid().prob.copy()
    prob[1, 2] = np.nan
    return prob


@pytest.mark.parametrize("bad, message", [
    (_with(prob=_nan_map()), r"'cat_17'.*1 NaN.*method produced"),
    (_with(prob=np.full((4, 4), np.inf, np.float32)), r"'cat_17'.*16 infinite.*method produced"),
    (_with(prob=np.full((4, 4), 1.5, np.float32)), r"'cat_17'.*\[0, 1\].*1\.5"),
    (_with(prob=np.full((4, 4), -0.1, np.float32)), r"must lie in \[0, 1\]"),
    (_with(prob=np.full((4, 4), 0.2)), r"float32, got float64"),
    (_with(prob=np.full((1, 4, 4), 0.2, np.float32)), r"2-D"),
    (_with(prob=np.zeros((4, 5), np.float32)), r"shape \(4, 5\) but mask has shape \(4, 4\)"),
    (_with(mask=np.eye(4, dtype=np.uint8) * 255), r"mask must be a bool.*uint8.*load_mask"),
    (_with(label=2), r"label must be.*got 2"),
    (_with(label=True), r"label must be"),
    (_with(label=0), r"authentic image .*4 manipulated"),
    (_with(image_score=float("nan")), r"image_score.*nan"),
    (_with(image_score=1.2), r"image_score.*1.2"),
    (_with(prob=np.zeros((0, 4), np.float32), mask=np.zeros((0, 4), bool)), r"empty image"),
])
def test_bad_input_raises_and_changes_nothing(bad, message):
    suite = run_suite(make_images(0)[:3])
    before = suite.compute()
    with pytest.raises(MetricInputError, match=message):
        suite.update(bad)
    assert suite.n_images == 3
    assert_results_equal(suite.compute(), before, tol=0)


# -- streaming contract -----------------------------------------------------------------------
def _shards(items: list, k: int, rng: np.random.Generator) -> list[list]:
    order = rng.permutation(len(items))
    return [[items[i] for i in part] for part in np.array_split(order, k)]


@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_suite_shards_in_any_order_merge_to_one_pass(k):
    images = make_images(5) + realistic_images(5, n=3, size=24)
    one_pass = run_suite(images).compute()
    rng = np.random.default_rng(k)
    for _ in range(2):
        shards = [run_suite(part) for part in _shards(images, k, rng)]
        merged = shards[0]
        for shard in shards[1:]:
            merged.merge(shard)
        assert merged.n_images == len(images)
        assert merged.n_tampered == sum(im.label for im in images)
        assert_results_equal(merged.compute(), one_pass)


def test_state_dicts_reduced_like_a_distributed_layer_equal_one_pass():
    images = make_images(2)
    shards = [run_suite(part).state_dict() for part in _shards(images, 3, np.random.default_rng(0))]
    fresh = MetricSuite()
    reduced = {key: (np.sum([s[key] for s in shards], axis=0) if how == "sum"
                     else np.concatenate([s[key] for s in shards]))
               for key, how in fresh.state_reductions().items()}
    fresh.load_state_dict(reduced)
    assert fresh.n_images == len(images) and fresh.n_authentic == sum(im.label == 0 for im in images)
    assert_results_equal(fresh.compute(), run_suite(images).compute())


def test_state_dict_round_trip_and_reset():
    images = make_images(4)
    suite = run_suite(images, include_authentic=True)
    copy = MetricSuite(include_authentic=True)
    copy.load_state_dict(suite.state_dict())
    assert_results_equal(copy.compute(), suite.compute(), tol=0)
    copy.reset()
    assert copy.n_images == 0
    assert_results_equal(copy.compute(), MetricSuite().compute(), tol=0)
    with pytest.raises(ValueError, match="missing"):
        copy.load_state_dict({k: v for k, v in suite.state_dict().items() if k != "pixel_f1.total"})


def test_merge_refuses_different_options():
    with pytest.raises(ValueError, match="threshold"):
        MetricSuite(threshold=0.5).merge(MetricSuite(threshold=0.4))
    with pytest.raises(ValueError, match="metrics"):
        MetricSuite(["pixel_f1"]).merge(MetricSuite(["pixel_iou"]))


def test_pixel_metric_state_does_not_grow_with_images():
    images = realistic_images(1, n=12, size=16)
    pixel_names = [n for n in METRIC_NAMES if n.startswith("pixel_")]
    sizes = [sum(v.nbytes for v in run_suite(images[:n], names=pixel_names).state_dict().values())
             for n in (1, 12)]
    assert sizes[0] == sizes[1]


@pytest.mark.parametrize("name", METRICS.list(include_test_only=True))
def test_registered_metric_streams_correctly(name):
    """Every registered metric (built-in or plug-in) obeys the streaming contract."""
    cls = METRICS.get(name)
    assert issubclass(cls, Metric) and cls.name == name
    assert isinstance(cls.higher_is_better, bool) and METRICS.entry(name).description
    images = make_images(6)

    def fed(items) -> Metric:
        metric = METRICS.build(name, threshold=0.5, include_authentic=False)
        for im in items:
            metric.update(im)
        return metric

    one_pass = fed(images)
    want = one_pass.compute()
    assert next(iter(want)) == name
    parts = [fed(part) for part in _shards(images, 4, np.random.default_rng(1))]
    for part in parts[1:]:
        parts[0].merge(part)
    assert_results_equal(parts[0].compute(), want)
    restored = fed([])
    restored.load_state_dict(one_pass.state_dict())
    assert_results_equal(restored.compute(), want, tol=0)
    one_pass.reset()
    assert_results_equal(one_pass.compute(), fed([]).compute(), tol=0)
