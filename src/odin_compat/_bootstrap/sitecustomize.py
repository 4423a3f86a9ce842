"""Put first on PYTHONPATH by `odin-compat run`: every Python process started under it reads
this file at start-up. It activates odin_compat, then runs the sitecustomize it shadows, if any.

It must never break start-up: a Python without odin_compat (another environment) starts as usual.
"""

import os
import sys


def _disabled() -> bool:
    """odin_compat's own reading of ODIN_COMPAT_DISABLE (its `_env.py`, next to this folder), run
    without importing odin_compat: importing it would activate it."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_env.py")
    namespace: dict = {}
    try:
        with open(path, encoding="utf-8") as f:
            exec(compile(f.read(), path, "exec"), namespace)
        return namespace["disabled"]()
    except Exception:  # another environment's odin, or none: activation decides for itself
        return False


def _activate() -> None:
    if _disabled():
        return
    try:
        import odin_compat  # noqa: F401
    except Exception as exc:  # another environment, or a broken install
        if os.environ.get("ODIN_COMPAT_RUN_DEBUG"):
            sys.stderr.write(f"odin_compat: start-up activation skipped: {exc!r}\n")


def _chain() -> None:
    """Run the next `sitecustomize` on sys.path, as Python would have without this one."""
    import importlib.util
    from importlib.machinery import PathFinder

    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


_activate()
_chain()
