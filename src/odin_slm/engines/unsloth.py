"""The ``unsloth`` engine: unsloth's ``FastLanguageModel`` loads the model and adds LoRA; SFTTrainer trains.

unsloth patches transformers and trl as it imports, so :func:`odin_slm.train.main` imports it
before them when this engine will run (see ``import_early``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from odin_slm.engines.trl import TrlEngine


class UnslothEngine(TrlEngine):
    name = "unsloth"
    unsloth = True

    def load(self, model_args: Any, args: Any) -> tuple[Any, Any, Path]:
        from odin_slm.model import load_unsloth

        return load_unsloth(model_args, args)  # with the LoRA adapter when --use_peft

    def add_lora(self, model: Any, model_args: Any, args: Any) -> Any:
        return model  # load() added it through unsloth's get_peft_model

    def rows(self, rows: list[dict]) -> list[dict]:
        # unsloth's patched SFTTrainer._prepare_dataset reads dataset[0]["text"] (a BOS check) even
        # for tokenized rows; an empty text field satisfies it, and the collator never reads it.
        return [{**row, "text": ""} for row in rows]
