"""The collection gateway: a shared-use payment collection center (共同利用センタ) for Japan."""

__version__ = "0.1.0"
