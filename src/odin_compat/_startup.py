"""Backward-compatible name for `odin_compat.startup`: start-up files written by older releases
name `odin_compat._startup:activate`. Both names are the same module object."""

import sys

from odin_compat import startup

sys.modules[__name__] = startup
