import pytest

from imlbench.registry import METHODS, REGISTRIES, Registry, RegistryError


def test_register_get_and_wildcards():
    reg: Registry = Registry("widget")
    reg.register("alpha")(type("A", (), {}))
    reg.register("beta")(type("B", (), {}))
    reg.register("alps", test_only=True)(type("C", (), {}))
    assert reg.list() == ["alpha", "beta"]
    assert reg.list("al*") == ["alpha"]
    assert reg.list("al*", include_test_only=True) == ["alpha", "alps"]
    assert reg.get("beta").__name__ == "B"


def test_duplicate_name_raises():
    reg: Registry = Registry("widget")
    reg.register("x")(type("A", (), {}))
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("x")(type("B", (), {}))


def test_unknown_name_suggests_closest_and_lists_available():
    reg: Registry = Registry("widget")
    for n in ("ela", "noise_mad", "jpeg_grid"):
        reg.register(n)(type(n, (), {}))
    with pytest.raises(RegistryError) as exc:
        reg.get("elaa")
    msg = str(exc.value)
    assert "Did you mean 'ela'" in msg and "jpeg_grid" in msg and "imlbench list widgets" in msg


def test_builtin_registries_are_populated():
    for kind, reg in REGISTRIES.items():
        assert len(reg.list(include_test_only=True)) > 0, kind


def test_entry_point_plugins_are_loaded(monkeypatch):
    import imlbench.registry as registry

    loaded = []

    class FakeEP:
        name, value = "fake", "fake_pkg:register"

        def load(self):
            loaded.append(True)
            METHODS.register("plugin_method_for_test")(type("P", (), {}))

    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group: [FakeEP()] if group == registry.PLUGIN_GROUP else [])
    try:
        registry._load_entry_points()
        assert loaded and "plugin_method_for_test" in METHODS
    finally:
        METHODS.remove("plugin_method_for_test")


def test_broken_plugin_names_itself(monkeypatch):
    import imlbench.registry as registry

    class BadEP:
        name, value = "bad", "bad_pkg:oops"

        def load(self):
            raise ImportError("no module named bad_pkg")

    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group: [BadEP()])
    with pytest.raises(RuntimeError, match="bad_pkg:oops"):
        registry._load_entry_points()


def test_builtin_module_failing_to_import_is_raised_with_its_name_until_it_imports(
        tmp_path, monkeypatch):
    """A registry is never left half-loaded: the import error names the module, and every
    lookup tries again (no "unknown widget" from the entries registered before the failure)."""
    import importlib

    import imlbench.registry as registry

    reg: Registry = Registry("widget", ("half_broken_widgets",))
    monkeypatch.setattr(registry, "WIDGETS_FOR_TEST", reg, raising=False)
    module = tmp_path / "half_broken_widgets.py"
    body = "import imlbench.registry as r\nr.WIDGETS_FOR_TEST.add('first', 1)\n"
    module.write_text(body + "raise RuntimeError('half-way')\nr.WIDGETS_FOR_TEST.add('second', 2)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for _ in range(2):
        with pytest.raises(ImportError, match="'half_broken_widgets' failed to import "
                                              r"\(RuntimeError: half-way\)") as exc:
            reg.get("second")
        assert exc.value.name == "half_broken_widgets"
    module.write_text(body + "r.WIDGETS_FOR_TEST.add('second', 2)\n")
    importlib.invalidate_caches()
    assert reg.get("second") == 2 and reg.list() == ["first", "second"]


def test_broken_plugin_is_an_expected_error_and_is_retried(monkeypatch):
    import imlbench.registry as registry
    from imlbench.errors import ImlbenchError

    class BadEP:
        name, value = "bad", "bad_pkg:oops"

        def load(self):
            raise ImportError("no module named bad_pkg")

    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group: [BadEP()])
    for _ in range(2):
        with pytest.raises(ImlbenchError, match="bad_pkg:oops"):
            registry._load_entry_points()
    assert registry._entry_points_loaded is False
