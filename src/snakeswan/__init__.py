"""snakeswan: IPsec with IKEv1 in Python."""

__version__ = "0.1.0"
