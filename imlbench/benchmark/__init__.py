"""Evaluation runner and training loop: the part of the data flow that runs methods."""
