"""Evaluations of attribution methods: baselines, datasets, metrics and the eval runner."""
