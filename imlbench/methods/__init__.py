"""Localizers. Importing this package registers the built-in methods in ``METHODS``."""
from imlbench.methods import classic  # noqa: F401
from imlbench.methods import sanity  # noqa: F401
from imlbench.methods import cat_net  # noqa: F401
from imlbench.methods import ncl  # noqa: F401
from imlbench.methods import mpc  # noqa: F401
from imlbench.methods import trufor  # noqa: F401
from imlbench.methods import pscc_net  # noqa: F401
from imlbench.methods import iml_vit  # noqa: F401
from imlbench.methods import mvss_net  # noqa: F401
from imlbench.methods import mmseg_models, seg_ce  # noqa: F401  (trainable baselines)
