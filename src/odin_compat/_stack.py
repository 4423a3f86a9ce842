"""The package names of the training stack, in one place."""

from __future__ import annotations

# The libraries odin repairs: each has a record module in `odin_compat.repairs`.
REPAIRED = ("accelerate", "huggingface_hub", "peft", "transformers", "trl")

# Libraries whose functions other packages rebuild from source: where the healer finds originals.
ORIGINS = ("accelerate", "transformers", "trl", "peft")

# Packages that rebuild other libraries' functions from source; after each of their imports the
# healer sweeps.
REBUILDERS = ("unsloth", "unsloth_zoo", "unsloth_compiled_cache")

# Packages the origin libraries import that import none of them (their requirements and optional
# integrations): they never see an origin function, so they cannot rebuild one. Their imports leave
# the healer's exec trigger unarmed; a package missing here only arms it sooner.
DEPENDENCIES = (
    "aiohttp", "aiosignal", "anyio", "attr", "attrs", "bitsandbytes", "certifi", "charset_normalizer",
    "datasets", "dateutil", "dill", "filelock", "frozenlist", "fsspec", "functorch", "h11", "hf_xet",
    "httpcore", "httpcore2", "httpx", "httpx2", "huggingface_hub", "idna", "jinja2", "markdown_it",
    "markupsafe", "mdurl", "mpmath", "multidict", "multiprocess", "networkx", "numpy", "packaging",
    "pandas", "PIL", "propcache", "psutil", "pyarrow", "pydantic", "pydantic_core", "pygments", "pytz",
    "regex", "requests", "rich", "safetensors", "six", "sniffio", "sympy", "tokenizers", "torch",
    "torchgen", "tqdm", "triton", "truststore", "typing_extensions", "tzdata", "urllib3", "xxhash",
    "yaml", "yarl",
)  # fmt: skip

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
