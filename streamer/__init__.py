"""newsstream runtime: the Kafka worker, the embedded broker and the model-artifact contract."""

__version__ = "0.1.0"
