"""The one place odin's version is written (pyproject.toml reads it; so does `odin_compat.__version__`)."""

__version__ = "0.1.0"
