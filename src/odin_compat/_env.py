"""The one reading of odin's environment switches.

Kept free of imports beyond `os`: `odin-compat run`'s sitecustomize executes this file on its own,
before (and instead of) importing odin_compat, which would activate it.
"""

import os

# The values that switch a flag on, as in transformers' and huggingface_hub's env flags; any other
# value ("0", "off", "false", "no", a typo) leaves it off.
TRUE_VALUES = ("1", "true", "yes", "on", "y", "t")


def flag(name: str) -> bool:
    """True when environment variable `name` holds one of TRUE_VALUES (any case, spaces ignored)."""
    return os.environ.get(name, "").strip().lower() in TRUE_VALUES


def disabled() -> bool:
    """ODIN_COMPAT_DISABLE: everything off."""
    return flag("ODIN_COMPAT_DISABLE")
