"""Dial: Kubernetes-native hyperparameter tuning with one pure engine and two backends."""

__version__ = "0.1.0"
