"""Backward-compatible name for `odin_compat.records` (the authoring API) and the registry behind it."""

from odin_compat._registry import (  # noqa: F401
    REGISTRY,
    Outcome,
    Registry,
    apply,
    apply_for,
    current_outcomes,
    holds,
    repair_replaced,
    why_applies,
)
from odin_compat._stack import version as dist_version  # noqa: F401
from odin_compat.records import *  # noqa: F403
