"""Test-wide isolation: nothing the tests build lands in the user's cache.

Every test session gets its own ``IMLBENCH_HOME`` and the ``tiny`` synthetic preset (64–96 px,
a handful of images per set), so registered synthetic datasets build in well under a second.
"""
import os
import tempfile

os.environ["IMLBENCH_HOME"] = tempfile.mkdtemp(prefix="imlbench-test-home-")
os.environ.setdefault("IMLBENCH_SYNTH_PRESET", "tiny")
os.environ["HF_HUB_OFFLINE"] = "1"
