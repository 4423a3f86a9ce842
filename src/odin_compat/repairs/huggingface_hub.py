"""Records for huggingface_hub.

The package's top level is lazy (a module `__getattr__` over `_SUBMOD_ATTRS`); a name put
straight into its namespace is found before that `__getattr__` runs.
"""

from __future__ import annotations

from odin_compat._records import REGISTRY, Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType

# --- HfFolder ------------------------------------------------------------------------------------

_HF_FOLDER: list[type] = []


def _hf_folder(module: ModuleType) -> type:
    if _HF_FOLDER:
        return _HF_FOLDER[0]
    from pathlib import Path
    from typing import Optional

    # Faithful copy of huggingface_hub 0.36.0's class (src/huggingface_hub/utils/_hf_folder.py);
    # `constants` and `get_token` are looked up on call, so the top-level alias imports nothing.
    class HfFolder:
        @classmethod
        def save_token(cls, token: str) -> None:
            """
            Save token, creating folder as needed.

            Token is saved in the huggingface home folder. You can configure it by setting
            the `HF_HOME` environment variable.

            Args:
                token (`str`):
                    The token to save to the [`HfFolder`]
            """
            from huggingface_hub import constants

            path_token = Path(constants.HF_TOKEN_PATH)
            path_token.parent.mkdir(parents=True, exist_ok=True)
            path_token.write_text(token)

        @classmethod
        def get_token(cls) -> Optional[str]:  # noqa: UP045
            """
            Get token or None if not existent.

            This method is deprecated in favor of [`huggingface_hub.get_token`] but is kept for backward compatibility.
            Its behavior is the same as [`huggingface_hub.get_token`].

            Returns:
                `str` or `None`: The token, `None` if it doesn't exist.
            """
            from huggingface_hub.utils import get_token

            return get_token()

        @classmethod
        def delete_token(cls) -> None:
            """
            Deletes the token from storage. Does not fail if token does not exist.
            """
            from huggingface_hub import constants

            try:
                Path(constants.HF_TOKEN_PATH).unlink()
            except FileNotFoundError:
                pass

    HfFolder.__module__ = "huggingface_hub.utils._hf_folder"
    _HF_FOLDER.append(HfFolder)
    return HfFolder


_HF_FOLDER_UPSTREAM = (
    "https://github.com/huggingface/huggingface_hub/blob/v0.36.0/src/huggingface_hub/utils/_hf_folder.py "
    "(removed by PR #3464, 1.0.0)"
)

for _module in ("huggingface_hub.utils", "huggingface_hub"):
    REGISTRY.add(
        Record(
            id=f"{_module.replace('_', '-').replace('.', '-')}-hffolder",
            affects="huggingface_hub>=1.0",
            module=_module,
            name="HfFolder",
            kind="backport",
            fixes=f"ImportError: cannot import name 'HfFolder' from '{_module}'",
            works="huggingface_hub<1.0",
            breaks="huggingface_hub>=1.0",
            upstream=_HF_FOLDER_UPSTREAM,
            remove_when="callers use huggingface_hub.get_token / login / logout",
            provide=_hf_folder,
        )
    )


# Not recorded: `hf_hub_download(resume_download=...)` and friends. huggingface_hub 1.0.0 already
# drops them with a warning (utils/_validators.py::smoothly_deprecate_legacy_arguments), so no
# release raises the TypeError that research/breakages.md row 19 lists.
