"""``python -m imlbench`` (and ``torchrun -m imlbench``) is the ``imlbench`` command."""
import sys

from imlbench.cli import main

sys.exit(main())
