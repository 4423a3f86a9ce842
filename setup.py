"""Builds odin's one compiled module; everything else is declared in pyproject.toml.

`odin_compat._audit` is the healer's audit hook in C (src/odin_compat/_audit.c). It is optional: where
it cannot be built (no C compiler, Python before 3.11, not CPython), odin uses the same hook written
in Python, which makes the stack's imports about half a percent slower.
"""

import platform
import sys

from setuptools import Extension, setup

extensions = []
if sys.version_info >= (3, 11) and platform.python_implementation() == "CPython":
    extensions.append(Extension("odin_compat._audit", ["src/odin_compat/_audit.c"], optional=True))

setup(ext_modules=extensions)
