"""The package names of the training stack, in one place."""

from __future__ import annotations

# The libraries odin repairs: each has a record module in `odin_compat.repairs`.
REPAIRED = ("accelerate", "huggingface_hub", "peft", "transformers", "trl")

# Libraries whose functions other packages rebuild from source: where the healer finds originals.
ORIGINS = ("accelerate", "transformers", "trl", "peft")

# Packages that rebuild other libraries' functions from source; after each of their imports the
# healer sweeps.
REBUILDERS = ("unsloth", "unsloth_zoo", "unsloth_compiled_cache")

# What `odin-compat scan` looks for in other packages' imports.
SCANNED = (*REPAIRED, "torch")

# What `odin-compat doctor` reports a version of, in this order.
STACK = (
    "torch", "transformers", "accelerate", "trl", "peft", "huggingface_hub", "datasets", "tokenizers",
    "safetensors", "unsloth", "unsloth_zoo", "bitsandbytes", "xformers", "triton", "numpy", "packaging", "odin",
)  # fmt: skip


def version(dist: str) -> str | None:
    """The installed version of distribution `dist`, or None: the one version lookup odin uses."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
