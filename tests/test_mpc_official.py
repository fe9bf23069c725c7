"""MPC's released files through the ordinary paths: ``--checkpoint`` takes an official stage-2
file, ``pretrained_path`` starts the encoder from ImageNet HRFormer weights or a stage-1 file
(strictly), and the input policy is the official cv2 resampling."""
from __future__ import annotations

import pytest
import torch

from imlbench.benchmark.loading import load_method
from imlbench.cli import main
from imlbench.errors import CheckpointError
from imlbench.methods.mpc import MPC, keymap
from imlbench.registry import METHODS
from tests.helpers import config_args, make_folder_dataset

TINY = MPC.tiny_config()


def _tiny(seed: int = 0, **overrides) -> MPC:
    torch.manual_seed(seed)
    return METHODS.build("mpc", **{**TINY, **overrides})


def _official_stage2(model: MPC) -> dict[str, torch.Tensor]:
    return keymap.ours_to_official(model.state_dict(), "stage2")


def test_official_stage2_file_loads_through_checkpoint_strictly(tmp_path):
    source = _tiny(seed=1)
    path = tmp_path / "MPC_CATNet_stage2_weights.pth"
    torch.save(_official_stage2(source), path)  # a bare state dict, as the official script saves
    loaded = load_method("mpc", path, config=TINY).state_dict()  # once: it is rebuilt per call
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key


def test_official_stage2_file_through_the_cli(tmp_path, capsys):
    path = tmp_path / "stage2.pth"
    torch.save(_official_stage2(_tiny(seed=2)), path)
    data = make_folder_dataset(tmp_path / "data", n_tampered=2, n_authentic=1, sizes=((40, 56),))
    code = main(["run", "--method", "mpc", "--checkpoint", str(path), "--dataset",
                 str(data.samples[0].image_path.parent.parent), "--quiet", "--json",
                 "--results-dir", str(tmp_path / "results"), "--workers", "0",
                 *config_args(TINY)])
    assert code == 0
    assert '"pixel_auc"' in capsys.readouterr().out


def test_a_stage1_file_is_refused_as_a_checkpoint_with_what_to_do(tmp_path):
    path = tmp_path / "stage1.pth"
    torch.save(keymap.ours_to_official(_tiny().encoder.state_dict(), "stage1"), path)
    with pytest.raises(CheckpointError, match="stage-1 file.*pretrained_path"):
        load_method("mpc", path, config=TINY)


def test_a_stage2_file_of_another_head_is_refused(tmp_path):
    path = tmp_path / "s2.pth"
    torch.save(_official_stage2(_tiny(head_widths=(16, 8, 8))), path)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_method("mpc", path, config=TINY)


def _imagenet_file(tmp_path, encoder_state: dict[str, torch.Tensor], extra: dict | None = None):
    """``hrt_base.pth`` as distributed: ``{"model": ...}`` in official names, with the
    classification head and without MPC's per-scale projections (``convs.``)."""
    official = keymap.ours_to_official(encoder_state, "stage1")
    state = {k: v for k, v in official.items() if not k.startswith("convs.")}
    state.update({"classifier.weight": torch.zeros(10, 4), "final_layer.0.weight": torch.zeros(2),
                  **(extra or {})})
    path = tmp_path / "hrt_base.pth"
    torch.save({"model": state}, path)
    return path


def test_imagenet_weights_initialise_the_encoder_strictly(tmp_path):
    source = _tiny(seed=3).encoder.state_dict()
    path = _imagenet_file(tmp_path, source)
    model = _tiny(seed=4, pretrained_path=str(path))
    fresh = _tiny(seed=4).encoder.state_dict()
    got = model.encoder.state_dict()
    for key, value in source.items():  # MPC's projections keep their own initialisation
        assert torch.equal(got[key], fresh[key] if key.startswith("embed.") else value), key
    assert model.load_encoder(path) == sorted(k for k in source if k.startswith("embed."))


def test_encoder_weights_with_a_foreign_key_are_an_error(tmp_path):
    path = _imagenet_file(tmp_path, _tiny().encoder.state_dict(), {"stage5.0.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="1 unexpected.*stage5"):
        _tiny(pretrained_path=str(path))


def test_official_stage1_file_initialises_everything_of_the_encoder(tmp_path):
    source = _tiny(seed=5).encoder
    path = tmp_path / "MPC_CATNet_stage1_weights.pth"
    torch.save(keymap.ours_to_official(source.state_dict(), "stage1"), path)
    model = _tiny(seed=6)
    assert model.load_encoder(path) == []
    loaded = model.encoder.state_dict()  # once: it is rebuilt per call
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key


def test_input_policy_is_the_official_resampling():
    policy = _tiny().input_policy
    assert (policy.kernel, policy.output_kernel) == ("cv2_linear", "cv2_linear")
    assert _tiny(kernel="bilinear_aa").input_policy.kernel == "bilinear_aa"
