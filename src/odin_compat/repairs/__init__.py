"""Repair records, one module per target library: records only, no machinery.

Importing a record module registers its records; nothing here imports a target library.
Activation imports a record module only when its target library starts to import (that keeps
`import odin_compat` and interpreter start-up cheap); `load_all()` imports every one.
"""

from odin_compat._stack import REPAIRED as TARGETS

# Record modules for several target libraries, driven by data/restore.json: loaded with any of these.
SHARED = {
    "moved": ("accelerate", "peft", "transformers", "trl"),
    "backported": ("accelerate", "peft", "transformers", "trl"),
    "arguments": ("transformers", "trl"),
}


def load(target: str) -> None:
    """Import (once) the record module of one target library."""
    __import__(f"{__name__}.{target}")
    for module, targets in SHARED.items():
        if target in targets:
            __import__(f"{__name__}.{module}")


def load_all() -> None:
    for target in TARGETS:
        load(target)
