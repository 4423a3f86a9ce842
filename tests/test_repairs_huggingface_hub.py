"""huggingface_hub records against real huggingface_hub releases (offline, local cache only)."""

from __future__ import annotations

import pytest

from matrix import breaks, target, untouched, works

pytestmark = pytest.mark.matrix

HUB_1 = "huggingface_hub==1.0.0"
HUB_0 = "huggingface_hub==0.36.0"
# Pure-Python deps huggingface_hub 1.0 imports (httpx instead of requests).
HUB_1_DEPS = ("httpx==0.28.1", "httpcore==1.0.9", "h11==0.16.0", "anyio==4.16.0", "sniffio==1.3.1", "idna==3.20",
              "certifi==2026.10.19.post1", "shellingham==1.5.4", "typer-slim==0.20.0")  # fmt: skip


def hub(spec: str):
    if spec == HUB_1:
        return (target(spec), target(*HUB_1_DEPS))
    return (target(spec, "requests==2.34.2", "urllib3==2.8.0", "charset_normalizer==3.5.3", "idna==3.20",
                   "certifi==2026.10.19.post1"),)  # fmt: skip


HF_FOLDER = """
import os
from huggingface_hub import HfFolder
from huggingface_hub.utils import HfFolder as from_utils
assert HfFolder is from_utils
os.environ.pop("HF_TOKEN", None)
assert HfFolder.get_token() is None
HfFolder.save_token("hf_odin_test")
assert HfFolder.get_token() == "hf_odin_test"
HfFolder.delete_token()
HfFolder.delete_token()
assert HfFolder.get_token() is None
print("ok")
"""


@pytest.mark.parametrize("spec", [HUB_1, "venv"])
def test_hffolder_breaks_on_1_0_and_is_repaired(spec: str) -> None:
    folders = hub(spec) if spec != "venv" else ()  # "venv": the test venv's own (latest) release
    breaks(HF_FOLDER, *folders, error="ImportError: cannot import name 'HfFolder' from 'huggingface_hub'")
    works(HF_FOLDER, *folders)


def test_hffolder_untouched_on_0_36() -> None:
    untouched(
        HF_FOLDER
        + """
import inspect, huggingface_hub.utils._hf_folder as upstream
RECORD = ("huggingface-hub-hffolder", "huggingface-hub-utils-hffolder")
assert inspect.getsourcefile(HfFolder) == upstream.__file__
""",
        *hub(HUB_0),
    )
