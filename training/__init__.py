"""Offline half of newsstream: labeled data, corpus mappings, training and evaluation. Never imported by
``streamer``."""
