"""Bad-input corpus: every case gets a specific error naming the file, or a documented
normalisation — never a silently changed score."""
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imlbench.benchmark.runner import PredictionError, check_prediction
from imlbench.cli import main
from imlbench.datasets.base import Dataset, DatasetError, Sample, load_image, load_mask
from imlbench.methods.base import Method, Prediction
from imlbench.results.store import ResultStore
from tests.helpers import make_folder_dataset

RGB = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)


def save(path: Path, im: Image.Image, **kw) -> Path:
    im.save(path, **kw)
    return path


@pytest.mark.parametrize("payload, kind", [
    (b"", "zero-byte"),
    (b"this is not an image\n" * 4, "text with an image extension"),
])
def test_undecodable_files_are_errors_naming_the_file(tmp_path, payload, kind):
    path = tmp_path / "photo.jpg"
    path.write_bytes(payload)
    with pytest.raises(DatasetError, match="photo.jpg"):
        load_image(path)
    with pytest.raises(DatasetError, match="photo.jpg"):
        load_mask(path, None)


def test_truncated_jpeg_is_an_error(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(RGB).save(buf, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(DatasetError, match="cut.jpg"):
        load_image(path)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK", "L"])
def test_colour_modes_are_normalised_to_rgb_as_documented(tmp_path, mode):
    src = Image.fromarray(RGB)
    im = src.convert(mode)
    path = save(tmp_path / f"x.{'tif' if mode == 'CMYK' else 'png'}", im)
    out = load_image(path)
    assert out.shape == (12, 10, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.asarray(im.convert("RGB")))  # alpha dropped, not composited


def test_sixteen_bit_images_are_scaled_to_eight_bits(tmp_path):
    arr = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    path = save(tmp_path / "deep.png", Image.fromarray(arr))
    out = load_image(path)
    assert out.shape == (1, 4, 3)
    assert out[0, :, 0].tolist() == [0, 1, 255, 128]


def test_exif_orientation_is_not_applied(tmp_path):
    im = Image.fromarray(RGB)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW" tag
    path = save(tmp_path / "rotated.jpg", im, exif=exif, quality=95)
    assert load_image(path).shape == (12, 10, 3)  # stored array, same geometry as its mask


def test_mask_with_other_size_is_an_error_with_the_fix(tmp_path):
    path = save(tmp_path / "m.png", Image.fromarray(np.zeros((5, 7), np.uint8)))
    with pytest.raises(DatasetError, match=r"m.png is 7x5 .* image is 10x12.*same size"):
        load_mask(path, (12, 10))


def test_anti_aliased_and_jpeg_masks_binarise_at_127_5(tmp_path):
    grey = np.array([[0, 127, 128, 255]], dtype=np.uint8)
    path = save(tmp_path / "aa.png", Image.fromarray(grey))
    assert load_mask(path, (1, 4)).tolist() == [[False, False, True, True]]
    block = np.zeros((16, 16), np.uint8)
    block[4:12, 4:12] = 255
    jpg = save(tmp_path / "m.jpg", Image.fromarray(block), quality=75)
    decoded = load_mask(jpg, (16, 16))
    assert abs(int(decoded.sum()) - 64) <= 4  # ringing goes to the nearer side


def test_decompression_bomb_is_an_error_not_a_hang(tmp_path, monkeypatch):
    path = save(tmp_path / "bomb.png", Image.fromarray(np.zeros((64, 64, 3), np.uint8)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 4096 px > 2 × limit
    with pytest.raises(DatasetError, match="bomb.png.*decompression-bomb"):
        load_image(path)


def test_duplicate_sample_ids_are_refused(tmp_path):
    p = tmp_path / "a.png"
    samples = [Sample("same", p, None, 0, "t"), Sample("same", p, None, 0, "t")]
    with pytest.raises(DatasetError, match="duplicate sample ids"):
        Dataset("dup", lambda: samples).samples


def test_empty_dataset_is_an_error(tmp_path, capsys):
    for sub in ("Tp", "Gt"):
        (tmp_path / "empty" / sub).mkdir(parents=True)
    assert main(["run", "--method", "ela", "--dataset", str(tmp_path / "empty"), "--quiet",
                 "--results-dir", str(tmp_path / "res")]) == 2
    assert "no samples" in capsys.readouterr().err


class _Fixed(Method):
    def __init__(self, out):
        super().__init__()
        self.out = out

    def predict(self, images, masks=None):
        return self.out


@pytest.mark.parametrize("make, match", [
    (lambda x: Prediction(torch.full_like(x[:, :1], float("inf"))), "NaN/inf"),
    (lambda x: Prediction(x[:, :1], image_score=torch.full((x.shape[0],), float("nan"))), "image_score"),
    (lambda x: x[:, :1], "expected Prediction"),
])
def test_method_output_violations(make, match):
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(PredictionError, match=match):
        check_prediction(make(x), x, _Fixed(None), ["a", "b"])


def test_wrong_map_shape_is_refused_by_the_prediction_contract():
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        Prediction(torch.rand(2, 2, 8, 8))


def test_fuzz_random_bytes_never_crash_the_tool(tmp_path, capsys):
    """Random bytes (some with real PNG/JPEG headers) as images and masks: the tool ends with
    a clear error (exit 2) by default and completes with --skip-bad; never a traceback."""
    rng = np.random.default_rng(1234)
    root = tmp_path / "fuzz"
    for sub in ("Tp", "Gt", "Au"):
        (root / sub).mkdir(parents=True)
    headers = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", b"GIF89a", b"II*\x00"]
    for i in range(24):
        blob = headers[i % len(headers)] + rng.bytes(int(rng.integers(0, 600)))
        if i % 3 == 0:
            (root / "Au" / f"a{i}.png").write_bytes(blob)
        else:
            (root / "Tp" / f"t{i}.png").write_bytes(blob)
            mask = blob if i % 2 else rng.bytes(64)
            (root / "Gt" / f"t{i}.png").write_bytes(mask)
    Image.fromarray(RGB).save(root / "Au" / "good.png")
    args = ["run", "--method", "ela", "--dataset", str(root), "--results-dir", str(tmp_path / "r"),
            "--workers", "0", "--quiet"]
    assert main(args) == 2
    assert "--skip-bad" in capsys.readouterr().err
    assert main(args + ["--skip-bad", "--json"]) == 0
    (cell,) = json.loads(capsys.readouterr().out)["results"]
    assert cell["n_images"] == 1 and cell["n_skipped"] == 24


WRITER = textwrap.dedent("""
    import sys
    from imlbench.benchmark.evaluate import evaluate
    from imlbench.robustness import CLEAN, parse_spec
    perts = [CLEAN] + [parse_spec(f"jpeg:{q}") for q in (95, 85, 75, 65, 55)]
    evaluate(sys.argv[1], sys.argv[2], perturbations=perts, results_dir=sys.argv[3],
             num_workers=0, progress=False)
""")


@pytest.mark.slow  # two Python processes: ~8 s
def test_two_processes_writing_one_store_keep_both_runs(tmp_path):
    make_folder_dataset(tmp_path / "data")
    res = tmp_path / "res"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, m, str(tmp_path / "data"), str(res)],
                              stderr=subprocess.PIPE) for m in ("ela", "noise_mad")]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    df = ResultStore(res).load()
    assert df.run_id.nunique() == 2
    for method in ("ela", "noise_mad"):
        cells = df[df.method == method].groupby(["perturbation", "severity"]).size()
        assert len(cells) == 6 and (cells == cells.iloc[0]).all()


def test_no_shell_is_ever_invoked():
    """User-supplied strings never reach a shell: no shell=True, os.system or os.popen."""
    src = Path(__file__).resolve().parents[1] / "imlbench"
    offenders = [f"{p.relative_to(src)}: {needle}" for p in src.rglob("*.py")
                 for needle in ("shell=True", "os.system(", "os.popen(")
                 if needle in p.read_text()]
    assert not offenders, offenders
