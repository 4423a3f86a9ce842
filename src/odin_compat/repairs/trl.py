# ruff: noqa: B028, B905  (verbatim upstream code below keeps its warnings.warn/zip calls as they were)
"""Records for trl.

trl is a lazy package (its own `_LazyModule`, like transformers'): records sit on the module
that defines the thing, and "lazy" records put removed names back into `trl` and `trl.trainer`.
"""

from __future__ import annotations

from odin_compat._records import (
    REGISTRY,
    Record,
    accepts,
    adapted,
    kwarg_adapter,
    lazy_export,
    rename_kwarg,
    renaming,
    warn_once,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType


# --- SFTTrainer(tokenizer=...) <-> processing_class ----------------------------------------------

_TOKENIZER_UPSTREAM = (
    "https://github.com/huggingface/trl/pull/2162 (processing_class, 0.12.0); "
    "https://github.com/huggingface/trl/pull/2894 (tokenizer removed, 0.16.0)"
)


def _sft_tokenizer(module: ModuleType) -> object:
    return rename_kwarg(
        module.SFTTrainer.__init__,
        "tokenizer",
        "processing_class",
        "trl-sfttrainer-tokenizer",
        warn="`tokenizer` is deprecated and removed starting from version 0.16.0 for `SFTTrainer.__init__`. "
        "Use `processing_class` instead (odin_compat renamed it).",
    )


REGISTRY.add(
    Record(
        id="trl-sfttrainer-tokenizer",
        affects="trl>=0.16.0",
        module="trl.trainer.sft_trainer",
        name="SFTTrainer.__init__",
        kind="kwarg",
        fixes="TypeError: SFTTrainer.__init__() got an unexpected keyword argument 'tokenizer'",
        works="trl<0.16.0 (deprecated since 0.12.0)",
        breaks="trl>=0.16.0",
        upstream=_TOKENIZER_UPSTREAM,
        remove_when="callers pass processing_class",
        provide=_sft_tokenizer,
        needed=renaming("SFTTrainer.__init__", "tokenizer", "processing_class"),
    )
)


def _sft_processing_class(module: ModuleType) -> object:
    return rename_kwarg(
        module.SFTTrainer.__init__, "processing_class", "tokenizer", "trl-sfttrainer-processing-class"
    )


REGISTRY.add(
    Record(
        id="trl-sfttrainer-processing-class",
        affects="trl<0.12.0",
        module="trl.trainer.sft_trainer",
        name="SFTTrainer.__init__",
        kind="kwarg",
        fixes="TypeError: SFTTrainer.__init__() got an unexpected keyword argument 'processing_class'",
        works="trl>=0.12.0",
        breaks="trl<0.12.0 with code written for newer releases",
        upstream=_TOKENIZER_UPSTREAM,
        remove_when="odin supports only trl>=0.12",
        provide=_sft_processing_class,
        needed=renaming("SFTTrainer.__init__", "processing_class", "tokenizer"),
    )
)


# --- SFTTrainer(dataset_text_field=..., max_seq_length=..., packing=..., ...) -> SFTConfig -------

# The trainer arguments trl 0.12 still took and moved into the config (trl 0.12.2 sft_trainer.py).
_SFT_MOVED = (
    "dataset_text_field", "packing", "max_seq_length", "num_of_sequences", "chars_per_token",
    "dataset_num_proc", "dataset_batch_size", "neftune_noise_alpha", "model_init_kwargs",
    "dataset_kwargs", "eval_packing",
)  # fmt: skip


def _sft_config_args(module: ModuleType) -> object:
    import dataclasses

    func = module.SFTTrainer.__init__
    missing = [k for k in _SFT_MOVED if not accepts(func, k)]
    SFTConfig = module.SFTConfig

    def adapt(args: tuple, kwargs: dict) -> tuple:
        moved = {k: kwargs.pop(k) for k in missing if k in kwargs}
        if not moved:
            return args, kwargs
        config = kwargs.get("args")
        if config is None and len(args) > 2:  # SFTTrainer(model, args, ...) positionally
            config = args[2]
        # As trl 0.12.2 did: no config -> SFTConfig(output_dir="tmp_trainer"); a plain
        # TrainingArguments -> an SFTConfig with the same values.
        if config is None:
            config = SFTConfig(output_dir="tmp_trainer")
        elif config.__class__.__name__ == "TrainingArguments":
            as_dict = config.to_dict()
            as_dict.update({k: getattr(config, k) for k in as_dict if k.endswith("_token")})
            config = SFTConfig(**as_dict)
        fields = {f.name for f in dataclasses.fields(config)}
        ignored = []
        for key, value in moved.items():
            if key == "max_seq_length" and key not in fields and "max_length" in fields:
                key = "max_length"  # trl >= 0.20 renamed the config field
            if key in fields:
                setattr(config, key, value)
            else:
                ignored.append(key)
        if len(args) > 2:
            args = args[:2] + (config,) + args[3:]
        else:
            kwargs["args"] = config
        warn_once(
            "trl-sfttrainer-config-args",
            f"You passed {sorted(moved)} to the SFTTrainer; trl 0.13 moved them into `SFTConfig`. "
            "odin_compat set them on the config; pass them to `SFTConfig` instead."
            + (f" This trl has no config field for {ignored}: they were ignored." if ignored else ""),
        )
        return args, kwargs

    return kwarg_adapter(func, adapt, "trl-sfttrainer-config-args")


def _sft_config_args_needed(module: ModuleType) -> bool:
    func = module.SFTTrainer.__init__
    return (
        not adapted(func, "trl-sfttrainer-config-args")
        and not accepts(func, "dataset_text_field")
        and accepts(func, "args")
    )


REGISTRY.add(
    Record(
        id="trl-sfttrainer-config-args",
        affects="trl>=0.13.0",
        module="trl.trainer.sft_trainer",
        name="SFTTrainer.__init__",
        kind="kwarg",
        fixes="TypeError: SFTTrainer.__init__() got an unexpected keyword argument 'dataset_text_field' "
        "(also 'max_seq_length', 'packing', 'dataset_num_proc', ...)",
        works="trl<0.13.0 (deprecated in 0.12)",
        breaks="trl>=0.13.0",
        upstream="https://github.com/huggingface/trl/pull/2306; https://github.com/unslothai/unsloth/issues/1264; "
        "trl v0.12.2 trl/trainer/sft_trainer.py (the moves this adapter repeats)",
        remove_when="callers pass these in SFTConfig",
        provide=_sft_config_args,
        needed=_sft_config_args_needed,
    )
)


# --- SFTConfig(max_seq_length=...) -> max_length ---------------------------------------------------


def _sft_config_max_seq_length(module: ModuleType) -> object:
    return rename_kwarg(
        module.SFTConfig.__init__,
        "max_seq_length",
        "max_length",
        "trl-sftconfig-max-seq-length",
        warn="`max_seq_length` is deprecated and was removed in version 0.20.0. Use `max_length` instead "
        "(odin_compat renamed it).",
    )


REGISTRY.add(
    Record(
        id="trl-sftconfig-max-seq-length",
        affects="trl>=0.20.0",
        module="trl.trainer.sft_config",
        name="SFTConfig.__init__",
        kind="kwarg",
        fixes="TypeError: SFTConfig.__init__() got an unexpected keyword argument 'max_seq_length'",
        works="trl<0.20.0 (max_length added 0.16.0, max_seq_length deprecated)",
        breaks="trl>=0.20.0",
        upstream="https://github.com/huggingface/trl/pull/3704; trl v0.19.1 trl/trainer/sft_config.py",
        remove_when="callers pass max_length",
        provide=_sft_config_max_seq_length,
        needed=renaming("SFTConfig.__init__", "max_seq_length", "max_length"),
    )
)


# --- DataCollatorForCompletionOnlyLM ---------------------------------------------------------------


def _completion_only_collator(module: ModuleType) -> type:
    import warnings
    from typing import Any

    import numpy as np
    import torch
    from transformers import DataCollatorForLanguageModeling

    # Faithful copy of trl 0.19.1's class (trl/trainer/utils.py), the last release that had it.
    class DataCollatorForCompletionOnlyLM(DataCollatorForLanguageModeling):
        """
        Data collator used for completion tasks. It ensures that all the tokens of the labels are set to an 'ignore_index'
        when they do not come from the assistant. This ensure that the loss is only calculated on the completion made by
        the assistant.

        Args:
            response_template (`Union[str, list[int]]`):
                the template form that indicates the start of the response, typically something like '### Response:\n'. It
                can also be passed as tokenized ids, which can be useful when using a tokenizer that encodes the response
                differently if it does not have proper context.
            instruction_template (`Union[str, list[int]]`):
                the template form that indicates the start of the human instruction, typically something like '###
                Human:\n'. Useful for assistant-style conversation datasets. It can also be passed as tokenized ids.
            mlm (`bool`, *optional*, defaults to `False`): Whether to use masked language modeling in the underlying
                `DataCollatorForLanguageModeling` class. Note that this option currently has no effect but is present
                 for flexibility and backwards-compatibility.
            ignore_index (`int`, *optional*, defaults to `-100`):
                The index to use to ignore the initial tokens with
        """

        def __init__(
            self,
            response_template: str | list[int],
            instruction_template: str | list[int] | None = None,
            *args,
            mlm: bool = False,
            ignore_index: int = -100,
            padding_free: bool = False,
            **kwargs,
        ):
            super().__init__(*args, mlm=mlm, **kwargs)
            warnings.warn(
                "This class is deprecated and will be removed in version 0.20.0. To train on completion only, please use "
                "the parameter `completion_only_loss` of `SFTConfig` instead.",
                DeprecationWarning,
            )

            self.instruction_template = instruction_template
            if isinstance(instruction_template, str):
                # The user provides a string, must tokenize
                self.instruction_token_ids = self.tokenizer.encode(
                    self.instruction_template, add_special_tokens=False
                )
            else:
                # The user already provides the token ids
                self.instruction_token_ids = instruction_template

            self.response_template = response_template
            if isinstance(response_template, str):
                # The user provides a string, must tokenize
                self.response_token_ids = self.tokenizer.encode(
                    self.response_template, add_special_tokens=False
                )
            else:
                # The user already provides the token ids
                self.response_token_ids = response_template

            if (
                not self.mlm
                and self.instruction_template
                and self.tokenizer.pad_token_id == self.tokenizer.eos_token_id
            ):
                warnings.warn(
                    "The pad_token_id and eos_token_id values of this tokenizer are identical. "
                    "If you are planning for multi-turn training, "
                    "it can result in the model continuously generating questions and answers without eos token. "
                    "To avoid this, set the pad_token_id to a different value.",
                    UserWarning,
                )

            self.ignore_index = ignore_index
            self.padding_free = padding_free

        def torch_call(self, examples: list[list[int] | Any | dict[str, Any]]) -> dict[str, Any]:
            batch = super().torch_call(examples)

            if self.instruction_template is None:
                for i in range(len(examples)):
                    response_token_ids_start_idx = None

                    for idx in np.where(batch["labels"][i] == self.response_token_ids[0])[0]:
                        # `response_token_ids` is `'### Response:\n'`, here we are just making sure that the token IDs match
                        if (
                            self.response_token_ids
                            == batch["labels"][i][idx : idx + len(self.response_token_ids)].tolist()
                        ):
                            response_token_ids_start_idx = idx

                    if response_token_ids_start_idx is None:
                        warnings.warn(
                            f"Could not find response key `{self.response_template}` in the following instance: "
                            f"{self.tokenizer.decode(batch['input_ids'][i])}. This instance will be ignored in loss "
                            "calculation. Note, if this happens often, consider increasing the `max_length`.",
                            UserWarning,
                        )
                        batch["labels"][i, :] = self.ignore_index
                    else:
                        response_token_ids_end_idx = response_token_ids_start_idx + len(
                            self.response_token_ids
                        )

                        # Make pytorch loss function ignore all tokens up through the end of the response key
                        batch["labels"][i, :response_token_ids_end_idx] = self.ignore_index

            else:
                for i in range(len(examples)):
                    response_token_ids_idxs = []
                    human_token_ids_idxs = []

                    for assistant_idx in np.where(batch["labels"][i] == self.response_token_ids[0])[0]:
                        # find the indexes of the start of a response.
                        if (
                            self.response_token_ids
                            == batch["labels"][i][
                                assistant_idx : assistant_idx + len(self.response_token_ids)
                            ].tolist()
                        ):
                            response_token_ids_idxs.append(assistant_idx + len(self.response_token_ids))

                    if len(response_token_ids_idxs) == 0:
                        warnings.warn(
                            f"Could not find response key `{self.response_template}` in the following instance: "
                            f"{self.tokenizer.decode(batch['input_ids'][i])}. This instance will be ignored in loss "
                            "calculation. Note, if this happens often, consider increasing the `max_length`.",
                            UserWarning,
                        )
                        batch["labels"][i, :] = self.ignore_index

                    human_token_ids = self.instruction_token_ids
                    for human_idx in np.where(batch["labels"][i] == human_token_ids[0])[0]:
                        # find the indexes of the start of a human answer.
                        if (
                            human_token_ids
                            == batch["labels"][i][human_idx : human_idx + len(human_token_ids)].tolist()
                        ):
                            human_token_ids_idxs.append(human_idx)

                    if len(human_token_ids_idxs) == 0:
                        warnings.warn(
                            f"Could not find instruction key `{self.instruction_template}` in the following instance: "
                            f"{self.tokenizer.decode(batch['input_ids'][i])}. This instance will be ignored in loss "
                            "calculation. Note, if this happens often, consider increasing the `max_length`.",
                            UserWarning,
                        )
                        batch["labels"][i, :] = self.ignore_index

                    if (
                        len(human_token_ids_idxs) > 0
                        and len(response_token_ids_idxs) > 0
                        and human_token_ids_idxs[0] > response_token_ids_idxs[0]
                    ):
                        human_token_ids_idxs = [0] + human_token_ids_idxs

                    for idx, (start, end) in enumerate(zip(human_token_ids_idxs, response_token_ids_idxs)):
                        # Make pytorch loss function ignore all non response tokens
                        if idx != 0:
                            batch["labels"][i, start:end] = self.ignore_index
                        else:
                            batch["labels"][i, :end] = self.ignore_index

                    if len(response_token_ids_idxs) < len(human_token_ids_idxs):
                        batch["labels"][i, human_token_ids_idxs[-1] :] = self.ignore_index

            if self.padding_free:
                # remove padding, `attention_mask` and add `position_ids`
                attn_mask = batch.pop("attention_mask")
                batch["input_ids"] = batch["input_ids"][attn_mask.bool()].unsqueeze(0)
                batch["position_ids"] = attn_mask.cumsum(1)[attn_mask.bool()].unsqueeze(0) - 1
                batch["labels"] = batch["labels"][attn_mask.bool()].unsqueeze(0)
                batch["labels"][batch["position_ids"] == 0] = self.ignore_index

                # Calculate cumulative sequence lengths for queries and keys to prevent graph breaks during further computations.
                flattened_position_ids = batch["position_ids"].flatten()
                indices_q = torch.arange(
                    flattened_position_ids.size(0), device=flattened_position_ids.device, dtype=torch.int32
                )
                batch["cu_seq_lens_q"] = torch.cat(
                    (
                        indices_q[flattened_position_ids == 0],
                        torch.tensor(
                            flattened_position_ids.size(),
                            device=flattened_position_ids.device,
                            dtype=torch.int32,
                        ),
                    )
                ).unsqueeze(0)
                batch["cu_seq_lens_k"] = batch["cu_seq_lens_q"]

                # Determine maximum sequence lengths to prevent graph breaks during further computations.
                batch["max_length_k"] = torch.tensor([flattened_position_ids.max().item() + 1])
                batch["max_length_q"] = batch["max_length_k"]

            return batch

    DataCollatorForCompletionOnlyLM.__module__ = module.__name__
    DataCollatorForCompletionOnlyLM.__qualname__ = "DataCollatorForCompletionOnlyLM"
    return DataCollatorForCompletionOnlyLM


_DCCO = "DataCollatorForCompletionOnlyLM"
_DCCO_UPSTREAM = "https://github.com/huggingface/trl/blob/v0.19.1/trl/trainer/utils.py (removed by PR #3704)"

REGISTRY.add(
    Record(
        id="trl-completion-only-collator",
        affects="trl>=0.20.0",
        module="trl.trainer.utils",
        name=_DCCO,
        kind="backport",
        fixes="ImportError: cannot import name 'DataCollatorForCompletionOnlyLM' from 'trl.trainer.utils'",
        works="trl<0.20.0",
        breaks="trl>=0.20.0",
        upstream=_DCCO_UPSTREAM,
        remove_when="callers use SFTConfig(completion_only_loss=True)",
        provide=_completion_only_collator,
    )
)


def _export_from(submodule: str) -> object:
    def provide(module: ModuleType) -> None:
        lazy_export(module, _DCCO, submodule)

    return provide


REGISTRY.add(
    Record(
        id="trl-trainer-completion-only-collator-export",
        affects="trl>=0.20.0",
        module="trl.trainer",
        name=_DCCO,
        kind="lazy",
        fixes="ImportError: cannot import name 'DataCollatorForCompletionOnlyLM' from 'trl.trainer'",
        works="trl<0.20.0",
        breaks="trl>=0.20.0",
        upstream=_DCCO_UPSTREAM,
        remove_when="callers use SFTConfig(completion_only_loss=True)",
        provide=_export_from("utils"),
    )
)

REGISTRY.add(
    Record(
        id="trl-completion-only-collator-export",
        affects="trl>=0.20.0",
        module="trl",
        name=_DCCO,
        kind="lazy",
        fixes="ImportError: cannot import name 'DataCollatorForCompletionOnlyLM' from 'trl'",
        works="trl<0.20.0",
        breaks="trl>=0.20.0",
        upstream=_DCCO_UPSTREAM,
        remove_when="callers use SFTConfig(completion_only_loss=True)",
        provide=_export_from("trainer"),
    )
)
