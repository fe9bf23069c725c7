"""Segmentation networks: DeepLabV3+ structure, local pretrained weights, seg_ce, mmseg models."""
from __future__ import annotations

import importlib.util
import sys

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from imlbench.methods.nets import DeepLabV3Plus, normalize_imagenet
from imlbench.methods.seg_ce import SegCE

needs_mmseg = pytest.mark.skipif(importlib.util.find_spec("mmseg") is None,
                                 reason="mmsegmentation is not installed")


def test_deeplabv3plus_structure_and_shapes():
    net = DeepLabV3Plus("resnet18", num_classes=2, decoder_channels=32).eval()
    out = net(torch.rand(2, 3, 40, 56))
    assert out["logits"].shape == (2, 2, 40, 56)  # upsampled to the input size
    assert out["features"].shape == (2, 32, 10, 14)  # stride 4, before the classifier
    assert net.encoder.feature_info.reduction() == [4, 16]  # output stride 16
    dilations = [b[0].dilation[0] for b in net.aspp.branches]
    assert dilations == [1, 6, 12, 18] and net.low_level[0].out_channels == 48
    assert [b[0].dilation[0] for b in DeepLabV3Plus("resnet18", output_stride=8).aspp.branches] \
        == [1, 12, 24, 36]
    with pytest.raises(ValueError, match="no backbone 'resnet_nope'"):
        DeepLabV3Plus("resnet_nope")


@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
def test_imagenet_init_only_from_a_local_file(tmp_path, fmt):
    reference = timm.create_model("resnet18", pretrained=False)
    state = reference.state_dict()
    path = tmp_path / f"resnet18.{fmt}"
    if fmt == "safetensors":
        save_file(state, str(path))
    else:  # wrapped and DataParallel-prefixed, as training scripts often save them
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    net = DeepLabV3Plus("resnet18", pretrained_path=path)
    assert torch.equal(net.encoder.conv1.weight, reference.conv1.weight)
    assert torch.equal(net.encoder.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)
    with pytest.raises(ValueError, match=rf"{path.name} does not match.*missing keys"):
        DeepLabV3Plus("resnet34", pretrained_path=path)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        DeepLabV3Plus("resnet18", pretrained_path=tmp_path / "missing.safetensors")


def test_seg_ce_normalises_and_predicts_the_tampered_class_probability():
    x = torch.rand(2, 3, 32, 32)
    mean, std = torch.tensor(IMAGENET_DEFAULT_MEAN), torch.tensor(IMAGENET_DEFAULT_STD)
    assert torch.allclose(normalize_imagenet(x)[:, :, 3, 5], (x[:, :, 3, 5] - mean) / std)
    torch.manual_seed(0)
    method = SegCE(**SegCE.tiny_config()).eval()
    assert method.input_policy.mode == "resize" and method.input_policy.size == 32
    logits = method.net(normalize_imagenet(x))["logits"]
    pred = method.predict(x).mask_prob
    assert pred.shape == (2, 1, 32, 32)
    assert torch.allclose(pred[:, 0], torch.sigmoid(logits[:, 1] - logits[:, 0]), atol=1e-6)
    mask = (torch.rand(2, 1, 32, 32) > 0.7).float()
    loss = method.loss({"image": x, "mask": mask, "label": torch.ones(2, dtype=torch.long)})
    assert set(loss) == {"loss"}
    assert torch.allclose(loss["loss"], F.cross_entropy(logits, mask[:, 0].long()))


@needs_mmseg
def test_mmcv_lite_gets_a_stand_in_for_its_compiled_ops():
    from mmengine.utils.dl_utils import mmcv_full_available

    from imlbench._mmcv_compat import MissingCompiledOpError, _MissingExtension, import_mmseg

    models = import_mmseg()
    assert "EncoderDecoder" in models.module_dict and "DepthwiseSeparableASPPHead" in models
    ext = sys.modules["mmcv._ext"]
    if not isinstance(ext, _MissingExtension):
        pytest.skip("a full mmcv build is installed: nothing is patched")
    assert not mmcv_full_available()
    from mmcv.ops import DeformConv2d  # imports; fails only when used

    with pytest.raises(MissingCompiledOpError, match="'deform_conv_forward' needs mmcv's compiled"):
        DeformConv2d(2, 2, 3)(torch.zeros(1, 2, 5, 5), torch.zeros(1, 18, 3, 3))


def test_missing_mmseg_says_how_to_install(monkeypatch):
    from imlbench._mmcv_compat import import_mmseg

    monkeypatch.setitem(sys.modules, "mmseg", None)  # import mmseg -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'imlbench\[mmseg\]'"):
        import_mmseg()


@needs_mmseg
def test_mmseg_configs_are_adapted_for_one_process_no_downloads_one_class():
    from imlbench.methods.mmseg_models import DEEPLABV3PLUS_R50, adapt_model_config, shipped_config

    shipped = shipped_config("segformer_mit-b0_8xb2-160k_ade20k-512x512")
    assert shipped["backbone"]["init_cfg"]["type"] == "Pretrained"  # the wheel's config downloads
    for cfg in (adapt_model_config(shipped), adapt_model_config(DEEPLABV3PLUS_R50)):
        text = repr(cfg)
        assert "SyncBN" not in text and "Pretrained" not in text and cfg["pretrained"] is None
        assert "data_preprocessor" not in cfg
        assert cfg["decode_head"]["out_channels"] == 1 and cfg["decode_head"]["num_classes"] == 2
    aux = adapt_model_config(DEEPLABV3PLUS_R50)["auxiliary_head"]["loss_decode"]
    assert aux["loss_weight"] == 0.4 and aux["use_sigmoid"]
    with pytest.raises(ValueError, match="no mmseg config named 'segformer_mit-b9'.*segformer_mit-b0"):
        shipped_config("segformer_mit-b9")


@needs_mmseg
def test_mmseg_method_predicts_sigmoid_of_its_head_and_weights_aux_losses():
    from imlbench.methods.mmseg_models import MMSegDeepLabV3PlusR50

    torch.manual_seed(0)
    method = MMSegDeepLabV3PlusR50(**MMSegDeepLabV3PlusR50.tiny_config()).eval()
    x, mask = torch.rand(2, 3, 32, 32), (torch.rand(2, 1, 32, 32) > 0.7).float()
    feats = method.segmentor.extract_feat(normalize_imagenet(x))
    main = F.interpolate(method.segmentor.decode_head(feats), size=(32, 32), mode="bilinear")
    aux = F.interpolate(method.segmentor.auxiliary_head(feats), size=(32, 32), mode="bilinear")
    assert torch.allclose(method.predict(x).mask_prob, main.sigmoid(), atol=1e-6)
    terms = method.loss({"image": x, "mask": mask, "label": torch.ones(2, dtype=torch.long)})
    bce = F.binary_cross_entropy_with_logits
    assert torch.allclose(terms["loss_decode"], bce(main, mask))
    assert torch.allclose(terms["loss_aux"], 0.4 * bce(aux, mask))
    assert torch.allclose(terms["loss"], terms["loss_decode"] + terms["loss_aux"])
    norms = [type(m) for m in method.segmentor.modules() if "Norm" in type(m).__name__]
    assert torch.nn.BatchNorm2d in norms and torch.nn.SyncBatchNorm not in norms
