"""Baseline attribution methods, registered in :mod:`heta_lens.registry` next to HETA."""
