"""The gateway: train, serve and evaluate fine-tuned language models."""

from gateway.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
