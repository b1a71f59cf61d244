"""embodied: language-conditioned robot policies, from demonstrations to a robot."""

__version__ = "0.1.0"
