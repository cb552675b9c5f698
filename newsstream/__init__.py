"""The ``newsstream`` command: wires the offline half (``training``) and the runtime (``streamer``)."""
