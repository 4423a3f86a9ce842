"""Repair records, one module per target library: records only, no machinery.

Importing this package registers every record; nothing here imports a target library.
"""

from odin_compat.repairs import accelerate as accelerate  # noqa: F401  (registers records)
from odin_compat.repairs import huggingface_hub as huggingface_hub  # noqa: F401
from odin_compat.repairs import peft as peft  # noqa: F401
from odin_compat.repairs import transformers as transformers  # noqa: F401
from odin_compat.repairs import trl as trl  # noqa: F401
