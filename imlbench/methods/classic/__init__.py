"""Training-free forensic baselines (native resolution, no learned weights)."""
from imlbench.methods.classic import ela, jpeg_grid, noise  # noqa: F401  (register the methods)
