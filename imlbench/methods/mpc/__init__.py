"""MPC (multi-view pixel contrast); importing this package registers ``mpc`` and
``mpc_no_stage1``."""
from imlbench.methods.mpc.keymap import load_official_checkpoint
from imlbench.methods.mpc.model import MPC, MPCConfig, MPCNoStage1

__all__ = ["MPC", "MPCConfig", "MPCNoStage1", "load_official_checkpoint"]
