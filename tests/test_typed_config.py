"""Config values are checked and converted against their declared types."""
import inspect
from pathlib import Path
from typing import Literal

import pytest

from imlbench import typed_config as tc
from imlbench.benchmark.evaluate import load, method_label
from imlbench.benchmark.recipes import RECIPES_DIR, load_recipe, recipe_names
from imlbench.errors import ConfigError, UnknownOptionError
from imlbench.registry import METHODS

CLI = tc.CommandLineValue


@pytest.mark.parametrize("text, annotation, expected", [
    ("1e-3", float, 0.001), ("3", float, 3.0), ("-2", int, -2), ("true", bool, True),
    ("no", bool, False), ("none", int | None, None), ("7", int | None, 7),
    ("0.5", float | None, 0.5), ("null", bool | None, None), ("drop", Literal["dual", "drop"], "drop"),
    ("[64, 32]", tuple[int, ...], (64, 32)), ("64,32", tuple[int, ...], (64, 32)),
    ("a,b", tuple[str, ...], ("a", "b")), ("[1, 2.5]", tuple[int, float], (1, 2.5)),
    ("resnet18", str, "resnet18"), ("1e-3", str, "1e-3"), ("x.pth", str | Path | None, "x.pth"),
    ("{a: 1e-3}", dict, {"a": 0.001}),
])
def test_text_becomes_the_declared_type(text, annotation, expected):
    value = tc.coerce(CLI(text), annotation, "field")
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("value, annotation, message", [
    ("high", int, "expected int, got 'high' (text)"),
    ("1.5", int, "expected int"),
    (1.5, int, "got 1.5 (float)"),
    (True, int, "expected int"),
    (True, float, "expected float"),
    ("maybe", bool, "expected bool"),
    ("dorp", Literal["dual", "drop"], "expected one of 'dual', 'drop', got 'dorp'"),
    ("x", int | None, "expected int or None"),
    ("1,2,3", tuple[int, int], "a list of 2 values"),
    (3, str, "expected str, got 3 (int)"),
])
def test_wrong_values_name_field_type_and_allowed_values(value, annotation, message):
    with pytest.raises(ConfigError, match="^lr: ") as exc:
        tc.coerce(value, annotation, "lr")
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_yaml_1_2_floats():
    assert tc.load_yaml("lr: 1e-3\nb: 1E5\nc: .5\nd: '1e-3'\ne: 10") == \
        {"lr": 0.001, "b": 100000.0, "c": 0.5, "d": "1e-3", "e": 10}


def test_command_line_value_without_declared_type_is_read_as_yaml():
    assert tc.coerce_fields({"n": CLI("8"), "s": "8"}, {}, "m", allow_unknown=True) == \
        {"n": 8, "s": "8"}


@pytest.mark.parametrize("name", METHODS.list(include_test_only=True))
def test_every_method_declares_typed_options_and_its_defaults_fit_them(name):
    """The contract plug-ins follow: options readable from ``__init__`` (and a ``<Class>Config``
    dataclass behind ``**kwargs``), every default of the declared type."""
    cls = METHODS.get(name)
    options, complete = tc.method_options(cls)
    assert complete, f"{name}: **kwargs lead to no config dataclass (name it {cls.__name__}Config)"
    defaults = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None and klass.__module__.startswith("imlbench"):
            for p in inspect.signature(init).parameters.values():
                if p.default is not p.empty:
                    defaults.setdefault(p.name, p.default)
    config_class = tc._config_class(cls)
    if config_class is not None:
        defaults.update({k: v for k, v in vars(config_class()).items() if k in options})
    for key, default in defaults.items():
        if key in options and default is not None:
            assert tc.coerce(default, options[key], key) == default, key


def test_method_config_converts_command_line_text():
    cfg = tc.method_config("ncl", {"contour": CLI("drop"), "temperature": CLI("1e-1"),
                                   "patch_size": CLI("none"), "proj_dim": CLI("16")})
    assert cfg == {"contour": "drop", "temperature": 0.1, "patch_size": None, "proj_dim": 16}
    assert method_label("ncl", cfg) == "ncl[contour=drop,patch_size=None,proj_dim=16,temperature=0.1]"
    mpc = tc.method_config("mpc", {"head_widths": CLI("[64,32]"), "stage1": CLI("false")})
    assert mpc == {"head_widths": (64, 32), "stage1": False}
    assert method_label("mpc", mpc) == "mpc[head_widths=[64, 32],stage1=False]"  # as YAML lists were


def test_unknown_or_wrong_method_option_is_one_line_naming_it():
    with pytest.raises(UnknownOptionError, match="no option 'temperatur'. Did you mean 'temperature'"):
        tc.method_config("ncl", {"temperatur": CLI("0.1")})
    with pytest.raises(ConfigError, match="method 'ela' option 'quality': expected int, got 'high'"):
        load("ela", config={"quality": CLI("high")})
    assert load("ela", config={"quality": CLI("80")}).module.quality == 80


def test_cli_config_lr_is_a_float(monkeypatch):
    """`--config x=1e-3` reaches the method as the float 0.001, not the text '1e-3'."""
    from imlbench import cli

    seen = {}

    def fake_evaluate(methods, datasets, **kw):
        seen.update(tc.method_config("ncl", kw["options"].config))
        raise ConfigError("stop here")

    monkeypatch.setattr("imlbench.benchmark.evaluate.evaluate", fake_evaluate)
    assert cli.main(["run", "--method", "ncl", "--config", "contrast_weight=1e-3",
                     "--config", "contour=drop", "--quiet"]) == 2
    assert seen == {"contrast_weight": 0.001, "contour": "drop"}
    assert type(seen["contrast_weight"]) is float


@pytest.mark.parametrize("recipe", recipe_names())
def test_shipped_recipes_fit_their_types_for_every_trainable_method(recipe):
    for name in METHODS.list():
        if getattr(METHODS.get(name), "trainable", False):
            rcp = load_recipe(recipe, name)
            assert isinstance(rcp.optimizer["lr"], float) and isinstance(rcp.steps, int)


@pytest.mark.parametrize("extra, message", [
    ("steps: ten", "field 'steps': expected int, got 'ten'"),
    ("val_mode: maximum", "field 'val_mode': expected one of 'max', 'min'"),
    ("amp: sometimes", "field 'amp': expected bool"),
    ("stepz: 3", "unknown keys ['stepz'] ('stepz': did you mean 'steps'?)"),
    ("stages: {'1': {steps: 1.5}}", "stage '1' field 'steps': expected int, got 1.5"),
    ("method: {decoder_channels: wide}", "option 'decoder_channels': expected int"),
    ("method: {decoder_chanels: 8}", "no option 'decoder_chanels'"),
])
def test_recipe_file_with_a_wrong_value_names_the_field(tmp_path, extra, message):
    path = tmp_path / "mine.yaml"
    path.write_text((RECIPES_DIR / "quick.yaml").read_text() + f"\n{extra}\n")
    with pytest.raises(ConfigError) as exc:
        load_recipe(path, "seg_ce")
    assert message in str(exc.value) and str(path) in str(exc.value)


def test_recipe_numbers_follow_yaml_1_2(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text((RECIPES_DIR / "quick.yaml").read_text()
                    + "\noptimizer: {name: adamw, lr: 1e-3, weight_decay: 5e-2}\ngrad_clip: null\n")
    rcp = load_recipe(path, "seg_ce")
    assert rcp.optimizer == {"name": "adamw", "lr": 0.001, "weight_decay": 0.05}
    assert rcp.grad_clip is None
