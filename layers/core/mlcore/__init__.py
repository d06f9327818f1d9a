"""Core package shared by every function: domain logic (pure numpy) and the S3 adapter."""

__version__ = "0.1.0"
