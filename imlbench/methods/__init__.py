"""Localizers. Importing this package registers the built-in methods in ``METHODS``."""
from imlbench.methods import classic  # noqa: F401
from imlbench.methods import sanity  # noqa: F401
from imlbench.methods import ncl  # noqa: F401
from imlbench.methods import mpc  # noqa: F401
from imlbench.methods import mmseg_models, seg_ce  # noqa: F401  (trainable baselines)
# the model zoo: the field's released localizers, each loading its official checkpoint
from imlbench.methods import cat_net, iml_vit, mvss_net, pscc_net, trufor  # noqa: F401
