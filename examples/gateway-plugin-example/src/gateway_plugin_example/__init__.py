"""An example third-party gateway plugin: the `reverse` backend and the `max-words` evaluator."""

__version__ = "0.1.0"
