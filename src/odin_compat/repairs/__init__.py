"""Repair records, one module per target library: records only, no machinery.

Importing this package registers every record; nothing here imports a target library.
"""

from odin_compat.repairs import accelerate as accelerate  # noqa: F401  (registers records)
