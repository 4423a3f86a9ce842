"""Records for huggingface_hub.

The package's top level is lazy (a module `__getattr__` over `_SUBMOD_ATTRS`); a name put
straight into its namespace is found before that `__getattr__` runs.
"""

from __future__ import annotations

from odin_compat.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

    from odin_compat.records import Record

_HF_FOLDER = (
    "https://github.com/huggingface/huggingface_hub/blob/v0.36.0/src/huggingface_hub/utils/_hf_folder.py "
    "(removed by PR #3464, 1.0.0)"
)


@record(
    "huggingface-hub-hffolder",
    "huggingface_hub:HfFolder",
    kind="backport",
    fixes="ImportError: cannot import name 'HfFolder' from 'huggingface_hub'",
    affects="huggingface_hub>=1.0",
    upstream=_HF_FOLDER,
    remove_when="callers use huggingface_hub.get_token / login / logout",
    proof="test_repairs_huggingface_hub::test_hffolder",
)
@record(
    "huggingface-hub-utils-hffolder",
    "huggingface_hub.utils:HfFolder",
    kind="backport",
    fixes="ImportError: cannot import name 'HfFolder' from 'huggingface_hub.utils'",
    affects="huggingface_hub>=1.0",
    upstream=_HF_FOLDER,
    remove_when="callers use huggingface_hub.get_token / login / logout",
    proof="test_repairs_huggingface_hub::test_hffolder",
)
def _hf_folder(module: ModuleType, record: Record) -> type:
    # One class for both places, as upstream's package re-exported its utils' class.
    from odin_compat.records import relocate
    from odin_compat.repairs._vendor import huggingface_hub_0_36

    return relocate(huggingface_hub_0_36.HfFolder, "huggingface_hub.utils._hf_folder")  # type: ignore[return-value]


# Not recorded: `hf_hub_download(resume_download=...)` and friends. huggingface_hub 1.0.0 already
# drops them with a warning (utils/_validators.py::smoothly_deprecate_legacy_arguments), so no
# release raises the TypeError that research/breakages.md row 19 lists.
