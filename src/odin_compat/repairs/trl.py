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
    from collections.abc import Callable
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


# --- get_kbit_device_map -----------------------------------------------------------------------------


def _get_kbit_device_map(module: ModuleType) -> object:
    # Faithful copy of trl 1.7.1's function (trl/trainer/utils.py).
    def get_kbit_device_map() -> dict[str, int] | None:
        import torch
        from accelerate import PartialState
        from transformers.utils import is_torch_xpu_available

        if torch.cuda.is_available() or is_torch_xpu_available():
            return {"": PartialState().local_process_index}
        else:
            return None

    get_kbit_device_map.__module__ = module.__name__
    return get_kbit_device_map


def _lazy(name: str, submodule: str) -> Callable[[ModuleType], None]:
    def provide(module: ModuleType) -> None:
        lazy_export(module, name, submodule)

    return provide


_KBIT = "get_kbit_device_map"
_KBIT_UPSTREAM = "https://github.com/huggingface/trl/blob/v1.7.1/trl/trainer/utils.py (last release listed in docs/api-diff.md that had it)"
for _id, _module, _kind, _provide in (
    ("trl-get-kbit-device-map", "trl.trainer.utils", "backport", _get_kbit_device_map),
    ("trl-trainer-get-kbit-device-map-export", "trl.trainer", "lazy", _lazy(_KBIT, "utils")),
    ("trl-get-kbit-device-map-export", "trl", "lazy", _lazy(_KBIT, "trainer.utils")),
):
    REGISTRY.add(
        Record(
            id=_id,
            affects="trl>=1.8",
            module=_module,
            name=_KBIT,
            kind=_kind,
            fixes=f"ImportError: cannot import name 'get_kbit_device_map' from '{_module}'",
            works="trl<=1.7.1",
            breaks="trl 1.16.0 (removed after 1.7.1)",
            upstream=_KBIT_UPSTREAM,
            remove_when="callers pass device_map themselves",
            provide=_provide,
        )
    )


# --- setup_chat_format ---------------------------------------------------------------------------------


def _setup_chat_format(module: ModuleType) -> object:
    from dataclasses import dataclass
    from typing import Literal, Optional

    # Faithful copy of trl 0.23.1's dataclass and function (trl/models/utils.py).
    @dataclass
    class ChatMlSpecialTokens:
        """Dataclass for special tokens used in ChatML, including system, user, assistant, bos, eos, and pad tokens."""

        bos_token: str = "<|im_start|>"
        eos_token: str = "<|im_end|>"
        pad_token: str = "<|im_end|>"

        @property
        def system(self):
            return f"{self.bos_token}system"

        @property
        def user(self):
            return f"{self.bos_token}user"

        @property
        def assistant(self):
            return f"{self.bos_token}assistant"

        @property
        def chat_template(self):
            return (
                "{% for message in messages %}"
                f"{{{{'{self.bos_token}' + message['role'] + '\n' + message['content'] + '{self.eos_token}' + '\n'}}}}"
                "{% endfor %}"
                "{% if add_generation_prompt %}"
                f"{{{{ '{self.assistant}\n' }}}}"
                "{% endif %}"
            )

    FORMAT_MAPPING = {"chatml": ChatMlSpecialTokens}

    def setup_chat_format(
        model,
        tokenizer,
        format: Optional[Literal["chatml"]] = "chatml",  # noqa: UP045
        resize_to_multiple_of: Optional[int] = None,  # noqa: UP045
    ):
        """
        Setup chat format by adding special tokens to the tokenizer, setting the correct format, and extending the
        embedding layer of the model based on the new special tokens.

        If the model already has a chat template, this will throw an error. If you want to overwrite it, please set
        `tokenizer.chat_template` to `None`.
        """
        warn_once(
            "trl-setup-chat-format",
            "The `setup_chat_format` function is deprecated and will be removed in version 0.26.0. Please use "
            "`clone_chat_template` instead.",
            DeprecationWarning,
        )
        # check if model already had a chat template
        if tokenizer.chat_template is not None:
            raise ValueError(
                "Chat template is already added to the tokenizer. If you want to overwrite it, please set it to None"
            )

        # check if format available and retrieve
        if format not in FORMAT_MAPPING:
            raise ValueError(f"Format {format} not available. Please use one of {FORMAT_MAPPING.keys()}")

        chat_format = FORMAT_MAPPING[format]()

        # set special tokens and them
        tokenizer.eos_token = chat_format.eos_token
        tokenizer.pad_token = chat_format.pad_token
        tokenizer.bos_token = chat_format.bos_token
        tokenizer.add_special_tokens(
            {"additional_special_tokens": [chat_format.bos_token, chat_format.eos_token]}
        )
        # set chat format for tokenizer
        tokenizer.chat_template = chat_format.chat_template

        # resize embedding layer to a multiple of 64, https://x.com/karpathy/status/1621578354024677377
        model.resize_token_embeddings(
            # After studying many tokenizers, we found that len(tokenizer.vocab) is the most reliable way to get the vocab
            # size. Avoid using tokenizer.vocab_size or tokenizer.vocab_size + len(tokenizer.added_tokens_encoder),
            # as handling of special and added tokens varies across tokenizers.
            new_num_tokens=len(tokenizer.vocab),
            pad_to_multiple_of=resize_to_multiple_of if resize_to_multiple_of is not None else None,
        )
        # Update the model config to use the new eos & bos tokens
        if getattr(model, "config", None) is not None:
            model.config.pad_token_id = tokenizer.pad_token_id
            model.config.bos_token_id = tokenizer.bos_token_id
            model.config.eos_token_id = tokenizer.eos_token_id
        # Update the generation config to use the new eos & bos token
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.bos_token_id = tokenizer.bos_token_id
            model.generation_config.eos_token_id = tokenizer.eos_token_id
            model.generation_config.pad_token_id = tokenizer.pad_token_id

        return model, tokenizer

    ChatMlSpecialTokens.__module__ = setup_chat_format.__module__ = module.__name__
    return setup_chat_format


def _from_models_utils(module: ModuleType) -> object:
    from trl.models import utils

    return utils.setup_chat_format


_CHAT = "setup_chat_format"
_CHAT_UPSTREAM = (
    "https://github.com/huggingface/trl/blob/v0.23.1/trl/models/utils.py (deprecated for clone_chat_template)"
)
for _id, _module, _kind, _provide in (
    ("trl-setup-chat-format", "trl.models.utils", "backport", _setup_chat_format),
    ("trl-models-setup-chat-format-export", "trl.models", "alias", _from_models_utils),
    ("trl-setup-chat-format-export", "trl", "lazy", _lazy(_CHAT, "models.utils")),
):
    REGISTRY.add(
        Record(
            id=_id,
            affects="trl>=0.24",
            module=_module,
            name=_CHAT,
            kind=_kind,
            fixes=f"ImportError: cannot import name 'setup_chat_format' from '{_module}'",
            works="trl<=0.23.1",
            breaks="trl>=0.24 (removed after 0.23.1; the 0.29.1 release lacks it)",
            upstream=_CHAT_UPSTREAM,
            remove_when="callers use clone_chat_template",
            provide=_provide,
        )
    )


# --- ORPOConfig / ORPOTrainer: moved to trl.experimental.orpo ---------------------------------------------

for _name, _sub in (
    ("ORPOConfig", "orpo"),
    ("ORPOTrainer", "orpo"),
    ("CPOConfig", "cpo"),
    ("CPOTrainer", "cpo"),
):
    REGISTRY.add(
        Record(
            id=f"trl-{_name.lower()}-export",
            affects="trl>=0.24",
            module="trl",
            name=_name,
            kind="lazy",
            fixes=f"ImportError: cannot import name '{_name}' from 'trl'",
            works="trl<=0.23.1 (exported from trl)",
            breaks=f"trl>=0.24 (0.29.1 lacks it; the same class lives in trl.experimental.{_sub})",
            upstream=f"trl v1.16.0 trl/experimental/{_sub}/__init__.py; trl v0.23.1 trl/__init__.py (last top-level export listed)",
            remove_when=f"callers import from trl.experimental.{_sub}",
            provide=_lazy(_name, f"experimental.{_sub}"),
        )
    )


# --- trl.commands.cli_utils: the module scripts imported their argument dataclasses from ---------------------

_CLI_NAMES = (
    "TrlParser", "init_zero_verbose", "SftScriptArguments", "DpoScriptArguments", "SFTScriptArguments",
    "DPOScriptArguments", "RewardScriptArguments", "YamlConfigParser",
)  # fmt: skip


def _cli_utils_namespace() -> dict[str, object]:
    import logging
    from dataclasses import dataclass, field

    from trl.scripts import utils as scripts_utils

    logger = logging.getLogger("trl.commands.cli_utils")
    ScriptArguments = scripts_utils.ScriptArguments

    # Faithful copies of trl 0.8.6's classes (trl/commands/cli_utils.py, the last with these names).
    @dataclass
    class SftScriptArguments:
        dataset_name: str = field(
            default="timdettmers/openassistant-guanaco", metadata={"help": "the dataset name"}
        )
        dataset_text_field: str = field(default=None, metadata={"help": "the text field of the dataset"})
        dataset_train_name: str = field(
            default="train", metadata={"help": "the name of the training set of the dataset"}
        )
        dataset_test_name: str = field(
            default="test", metadata={"help": "the name of the training set of the dataset"}
        )
        max_seq_length: int = field(
            default=512, metadata={"help": "The maximum sequence length for SFT Trainer"}
        )
        packing: bool = field(
            default=False, metadata={"help": "Whether to apply data packing or not during training"}
        )
        config: str = field(default=None, metadata={"help": "Path to the optional config file"})
        gradient_checkpointing_use_reentrant: bool = field(
            default=False, metadata={"help": "Whether to apply `use_reentrant` for gradient_checkpointing"}
        )

    @dataclass
    class DpoScriptArguments:
        dataset_name: str = field(default=None, metadata={"help": "the dataset name"})
        beta: float = field(default=0.1, metadata={"help": "the beta parameter for DPO loss"})
        max_length: int = field(default=512, metadata={"help": "max length of each sample"})
        max_prompt_length: int = field(default=128, metadata={"help": "max length of each sample's prompt"})
        max_target_length: int = field(
            default=128,
            metadata={"help": "Only used for encoder decoder model. Max target of each sample's prompt"},
        )
        sanity_check: bool = field(default=False, metadata={"help": "only train on 1000 samples"})
        ignore_bias_buffers: bool = field(
            default=False,
            metadata={
                "help": "debug argument for distributed training;"
                "fix for DDP issues with LM bias/mask buffers - invalid scalar type,`inplace operation. See"
                "https://github.com/huggingface/transformers/issues/22482#issuecomment-1595790992"
            },
        )
        generate_during_eval: bool = field(default=False, metadata={"help": "Generate during evaluation"})
        config: str = field(default=None, metadata={"help": "Path to the optional config file"})
        gradient_checkpointing_use_reentrant: bool = field(
            default=False, metadata={"help": "Whether to apply `use_reentrant` for gradient_checkpointing"}
        )

    # Faithful copies of trl 0.12.2's deprecated subclasses of ScriptArguments (today's base class).
    @dataclass
    class SFTScriptArguments(ScriptArguments):
        def __post_init__(self):
            logger.warning(
                "`SFTScriptArguments` is deprecated, and will be removed in v0.13. Please use "
                "`ScriptArguments` instead."
            )

    @dataclass
    class RewardScriptArguments(ScriptArguments):
        def __post_init__(self):
            logger.warning(
                "`RewardScriptArguments` is deprecated, and will be removed in v0.13. Please use "
                "`ScriptArguments` instead."
            )

    # trl 0.10.1's DPOScriptArguments also had `sanity_check` (dropped in 0.11): kept, with its default,
    # so scripts of both releases parse.
    @dataclass
    class DPOScriptArguments(ScriptArguments):
        sanity_check: bool = field(default=False, metadata={"help": "only train on 1000 samples"})

        def __post_init__(self):
            logger.warning(
                "`DPOScriptArguments` is deprecated, and will be removed in v0.13. Please use "
                "`ScriptArguments` instead."
            )

    import os
    import sys
    from argparse import Namespace

    from transformers import HfArgumentParser

    # Faithful copies of trl 0.12.2's YamlConfigParser and TrlParser (trl/commands/cli_utils.py): today's
    # TrlParser (trl.scripts.utils) refuses a dataclass field named `config`, which these script classes have.
    class YamlConfigParser:
        def parse_and_set_env(self, config_path):
            import yaml

            with open(config_path) as yaml_file:
                config = yaml.safe_load(yaml_file)

            if "env" in config:
                env_vars = config.pop("env")
                if isinstance(env_vars, dict):
                    for key, value in env_vars.items():
                        os.environ[key] = str(value)
                else:
                    raise ValueError("`env` field should be a dict in the YAML file.")

            return config

        def to_string(self, config):
            final_string = ""
            for key, value in config.items():
                if isinstance(value, (dict, list)):
                    if len(value) != 0:
                        value = str(value)
                        value = value.replace("'", '"')
                        value = f"'{value}'"
                    else:
                        continue

                final_string += f"--{key} {value} "
            return final_string

    class TrlParser(HfArgumentParser):
        def __init__(self, parsers, ignore_extra_args=False):
            """
            The TRL parser parses a list of parsers (TrainingArguments, trl.ModelConfig, etc.), creates a config
            parsers for users that pass a valid `config` field and merge the values that are set in the config
            with the processed parsers.
            """
            super().__init__(parsers)
            self.yaml_parser = YamlConfigParser()
            self.ignore_extra_args = ignore_extra_args

        def post_process_dataclasses(self, dataclasses):
            # Apply additional post-processing in case some arguments needs a special
            # care
            training_args = trl_args = None
            training_args_index = None

            for i, dataclass_obj in enumerate(dataclasses):
                if dataclass_obj.__class__.__name__ == "TrainingArguments":
                    training_args = dataclass_obj
                    training_args_index = i
                elif dataclass_obj.__class__.__name__ in ("SFTScriptArguments", "DPOScriptArguments"):
                    trl_args = dataclass_obj
                else:
                    ...

            if trl_args is not None and training_args is not None:
                training_args.gradient_checkpointing_kwargs = dict(
                    use_reentrant=trl_args.gradient_checkpointing_use_reentrant
                )
                dataclasses[training_args_index] = training_args

            return dataclasses

        def parse_args_and_config(self, return_remaining_strings=False):
            yaml_config = None
            if "--config" in sys.argv:
                config_index = sys.argv.index("--config")

                _ = sys.argv.pop(config_index)  # --config
                config_path = sys.argv.pop(config_index)  # path to config
                yaml_config = self.yaml_parser.parse_and_set_env(config_path)

                self.set_defaults_with_config(**yaml_config)

            outputs = self.parse_args_into_dataclasses(return_remaining_strings=return_remaining_strings)

            if yaml_config is None:
                return outputs

            if return_remaining_strings:
                # if we have extra yaml config and command line strings
                # outputs[-1] is remaining command line strings
                # outputs[-2] is remaining yaml config as Namespace
                # combine them into remaining strings object
                remaining_strings = outputs[-1] + [
                    f"{key}: {value}" for key, value in vars(outputs[-2]).items()
                ]
                return outputs[:-2], remaining_strings
            else:
                # outputs[-1] is either remaining yaml config as Namespace or parsed config as Dataclass
                if isinstance(outputs[-1], Namespace) and not self.ignore_extra_args:
                    remaining_args = vars(outputs[-1])
                    raise ValueError(
                        f"Some specified config arguments are not used by the TrlParser: {remaining_args}"
                    )

                return outputs

        def set_defaults_with_config(self, **kwargs):
            """Defaults we're setting with config allow us to change to required = False"""
            self._defaults.update(kwargs)

            # if these defaults match any existing arguments, replace
            # the previous default on the object with the new one
            for action in self._actions:
                if action.dest in kwargs:
                    action.default = kwargs[action.dest]
                    action.required = False

    classes = (SftScriptArguments, DpoScriptArguments, SFTScriptArguments, DPOScriptArguments,
               RewardScriptArguments, YamlConfigParser, TrlParser)  # fmt: skip
    for cls in classes:
        cls.__module__ = "trl.commands.cli_utils"
    # init_zero_verbose moved: the same object as trl.scripts.utils'
    return {"init_zero_verbose": scripts_utils.init_zero_verbose, **{cls.__name__: cls for cls in classes}}


def _commands(module: ModuleType) -> object:
    import sys
    import types

    package = types.ModuleType("trl.commands", "Backported by odin_compat: trl.commands (removed from trl).")
    package.__path__ = []  # a package, so `trl.commands.cli_utils` resolves
    cli_utils = types.ModuleType(
        "trl.commands.cli_utils", "Backported by odin_compat: trl.commands.cli_utils."
    )
    cli_utils.__all__ = list(_CLI_NAMES)
    cache: dict[str, object] = {}

    def __getattr__(name: str) -> object:  # built on first use: importing trl stays as light as upstream
        if name not in _CLI_NAMES:
            raise AttributeError(f"module 'trl.commands.cli_utils' has no attribute {name!r}")
        if not cache:
            cache.update(_cli_utils_namespace())
        value = cache[name]
        setattr(cli_utils, name, value)
        return value

    cli_utils.__getattr__ = __getattr__  # type: ignore[attr-defined]
    package.cli_utils = cli_utils  # type: ignore[attr-defined]
    sys.modules.setdefault("trl.commands", package)
    sys.modules.setdefault("trl.commands.cli_utils", cli_utils)
    return sys.modules["trl.commands"]


def _no_module(name: str) -> bool:
    """True when upstream has no module `name`: none to find, or only odin's own backport in
    sys.modules (a re-executed trl, whose new module object needs the attribute again)."""
    import importlib.util
    import sys

    if name in sys.modules:
        return getattr(sys.modules[name], "__spec__", None) is None  # a backport has no spec
    return importlib.util.find_spec(name) is None


def _commands_needed(module: ModuleType) -> bool:
    return "commands" not in vars(module) and _no_module("trl.commands")


# A backport of a whole module. Kind "wrap" only because that kind honours `needed`: the package's
# `commands` attribute is absent until the real submodule is imported, so the presence check of a
# "backport" record cannot see the upstream module (trl < 0.13) and would shadow it.
REGISTRY.add(
    Record(
        id="trl-commands-cli-utils",
        affects="trl>=0.13",
        module="trl",
        name="commands",
        kind="wrap",
        needed=_commands_needed,
        fixes="ModuleNotFoundError: No module named 'trl.commands'",
        works="trl<0.13 (trl.commands.cli_utils: TrlParser, SftScriptArguments, DpoScriptArguments, ...)",
        breaks="trl>=0.13 (init_zero_verbose moved to trl.scripts.utils, whose TrlParser refuses a `config` field; "
        "the script dataclasses were removed)",
        upstream="https://github.com/huggingface/trl/blob/v0.8.6/trl/commands/cli_utils.py; "
        "https://github.com/huggingface/trl/blob/v0.12.2/trl/commands/cli_utils.py; trl v1.16.0 trl/scripts/utils.py",
        remove_when="callers import from trl (TrlParser, ScriptArguments)",
        provide=_commands,
    )
)


# --- SFTConfig --max_seq_length as a command-line flag (see transformers-hfargparser-removed-flags) ---------


def _register_sft_flags() -> None:
    from odin_compat.repairs.transformers import FLAGS

    FLAGS.setdefault(
        "max_seq_length",
        ("SFTConfig", True, lambda v, g: [] if "max_length" in g else ["--max_length", str(v)]),
    )


_register_sft_flags()


# --- ModelConfig.torch_dtype -> dtype ----------------------------------------------------------------------


def _torch_dtype_property(module: ModuleType) -> object:
    # trl 0.23.1 (trl/trainer/model_config.py) kept `torch_dtype` as a deprecated field copied into `dtype`;
    # the attribute reads and writes `dtype`, the one field today's ModelConfig has.
    def torch_dtype(self):  # noqa: ANN001, ANN202
        warn_once(
            "trl-modelconfig-torch-dtype",
            "`torch_dtype` is deprecated and was removed in version 0.27.0, please use `dtype` instead "
            "(odin_compat read it from `dtype`).",
        )
        return self.dtype

    def set_torch_dtype(self, value) -> None:  # noqa: ANN001
        self.dtype = value

    return property(torch_dtype, set_torch_dtype)


def _model_config_init(module: ModuleType) -> object:
    return rename_kwarg(
        module.ModelConfig.__init__,
        "torch_dtype",
        "dtype",
        "trl-modelconfig-torch-dtype-kwarg",
        warn="`torch_dtype` is deprecated and was removed in version 0.27.0, please use `dtype` instead "
        "(odin_compat renamed it).",
    )


_DTYPE_UPSTREAM = "https://github.com/huggingface/trl/blob/v0.23.1/trl/trainer/model_config.py (torch_dtype deprecated for dtype)"
REGISTRY.add(
    Record(
        id="trl-modelconfig-torch-dtype",
        affects="trl>=0.27",
        module="trl.trainer.model_config",
        name="ModelConfig.torch_dtype",
        kind="backport",
        fixes="AttributeError: 'ModelConfig' object has no attribute 'torch_dtype'",
        works="trl<0.27 (deprecated field since 0.22)",
        breaks="trl>=0.27",
        upstream=_DTYPE_UPSTREAM,
        remove_when="callers read model_args.dtype",
        provide=_torch_dtype_property,
    )
)
REGISTRY.add(
    Record(
        id="trl-modelconfig-torch-dtype-kwarg",
        affects="trl>=0.27",
        module="trl.trainer.model_config",
        name="ModelConfig.__init__",
        kind="kwarg",
        fixes="TypeError: ModelConfig.__init__() got an unexpected keyword argument 'torch_dtype'",
        works="trl<0.27",
        breaks="trl>=0.27",
        upstream=_DTYPE_UPSTREAM,
        remove_when="callers pass dtype",
        provide=_model_config_init,
        needed=renaming("ModelConfig.__init__", "torch_dtype", "dtype"),
    )
)


def _register_model_config_flags() -> None:
    from odin_compat.repairs.transformers import FLAGS

    FLAGS.setdefault(
        "torch_dtype", ("ModelConfig", True, lambda v, g: [] if "dtype" in g else ["--dtype", str(v)])
    )


_register_model_config_flags()


# --- ModelConfig.trust_remote_code ---------------------------------------------------------------------------


def _trust_remote_code_property(module: ModuleType) -> object:
    # trl 0.29.1's field (trl/trainer/model_config.py): `trust_remote_code: bool = False`. Reads give the value
    # set on the instance, else that default; nothing else in today's trl reads it.
    def trust_remote_code(self):  # noqa: ANN001, ANN202
        return vars(self).get("_odin_trust_remote_code", False)

    def set_trust_remote_code(self, value) -> None:  # noqa: ANN001
        vars(self)["_odin_trust_remote_code"] = value

    return property(trust_remote_code, set_trust_remote_code)


REGISTRY.add(
    Record(
        id="trl-modelconfig-trust-remote-code",
        affects="trl>=1.0",
        module="trl.trainer.model_config",
        name="ModelConfig.trust_remote_code",
        kind="backport",
        fixes="AttributeError: 'ModelConfig' object has no attribute 'trust_remote_code'",
        works="trl<=0.29.1",
        breaks="trl>=1.0 (the 1.7.1 release lacks it)",
        upstream="https://github.com/huggingface/trl/blob/v0.29.1/trl/trainer/model_config.py",
        remove_when="callers pass trust_remote_code to from_pretrained themselves",
        provide=_trust_remote_code_property,
    )
)


# --- <Trainer>(tokenizer=...) -> processing_class, for the other trl trainers ---------------------------------

_TRAINER_MODULES = (
    ("DPOTrainer", "trl.trainer.dpo_trainer"),
    ("KTOTrainer", "trl.trainer.kto_trainer"),
    ("RewardTrainer", "trl.trainer.reward_trainer"),
    ("ORPOTrainer", "trl.trainer.orpo_trainer"),
    ("ORPOTrainer", "trl.experimental.orpo.orpo_trainer"),
    ("CPOTrainer", "trl.trainer.cpo_trainer"),
    ("CPOTrainer", "trl.experimental.cpo.cpo_trainer"),
)


def _trainer_tokenizer(cls: str, record_id: str) -> Callable[[ModuleType], object]:
    def provide(module: ModuleType) -> object:
        return rename_kwarg(
            getattr(module, cls).__init__,
            "tokenizer",
            "processing_class",
            record_id,
            warn=f"`tokenizer` is deprecated and removed for `{cls}.__init__`. "
            "Use `processing_class` instead (odin_compat renamed it).",
        )

    return provide


for _cls, _module in _TRAINER_MODULES:
    _id = f"trl-{_module.rpartition('.')[2].replace('_', '-')}-{'exp-' if 'experimental' in _module else ''}tokenizer"
    REGISTRY.add(
        Record(
            id=_id,
            affects="trl>=0.16.0",
            module=_module,
            name=f"{_cls}.__init__",
            kind="kwarg",
            fixes=f"TypeError: {_cls}.__init__() got an unexpected keyword argument 'tokenizer'",
            works="trl<0.16.0 (processing_class since 0.12.0)",
            breaks="trl>=0.16.0 (0.15.2 is the last release listed that took it)",
            upstream=_TOKENIZER_UPSTREAM,
            remove_when="callers pass processing_class",
            provide=_trainer_tokenizer(_cls, _id),
            needed=renaming(f"{_cls}.__init__", "tokenizer", "processing_class"),
        )
    )


# --- SIMPLE_CHAT_TEMPLATE ----------------------------------------------------------------------------------

# trl 0.23.1 trl/trainer/utils.py, verbatim (the last release listed that had it).
SIMPLE_CHAT_TEMPLATE = "{% for message in messages %}{{message['role'].capitalize() + ': ' + message['content'] + '\n\n'}}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"

REGISTRY.add(
    Record(
        id="trl-simple-chat-template",
        affects="trl>=0.24",
        module="trl.trainer.utils",
        name="SIMPLE_CHAT_TEMPLATE",
        kind="backport",
        fixes="ImportError: cannot import name 'SIMPLE_CHAT_TEMPLATE' from 'trl.trainer.utils'",
        works="trl<=0.23.1",
        breaks="trl>=0.24 (the 0.29.1 release lacks it)",
        upstream="https://github.com/huggingface/trl/blob/v0.23.1/trl/trainer/utils.py",
        remove_when="callers set their own chat template",
        provide=lambda module: SIMPLE_CHAT_TEMPLATE,
    )
)


# --- DPOTrainer(beta=..., max_length=..., ...) -> DPOConfig ----------------------------------------------------

# The trainer arguments trl 0.12.2's DPOTrainer still took (deprecated) and moved into DPOConfig.
_DPO_MOVED = (
    "beta", "label_smoothing", "loss_type", "label_pad_token_id", "padding_value", "truncation_mode",
    "max_length", "max_prompt_length", "max_target_length", "is_encoder_decoder", "disable_dropout",
    "generate_during_eval", "precompute_ref_log_probs", "dataset_num_proc", "model_init_kwargs",
    "ref_model_init_kwargs", "model_adapter_name", "ref_adapter_name", "reference_free", "force_use_ref_model",
)  # fmt: skip


def _dpo_config_args(module: ModuleType) -> object:
    import dataclasses

    func = module.DPOTrainer.__init__
    missing = [k for k in _DPO_MOVED if not accepts(func, k)]

    def adapt(args: tuple, kwargs: dict) -> tuple:
        moved = {k: kwargs.pop(k) for k in missing if k in kwargs}
        config = kwargs.get("args")
        if config is None and len(args) > 3:  # DPOTrainer(model, ref_model, args, ...) positionally
            config = args[3]
        plain = config is not None and not isinstance(config, module.DPOConfig)
        if not moved and not plain:
            return args, kwargs
        from trl import DPOConfig

        # As trl 0.12.2 did: no config -> DPOConfig(output_dir="tmp_trainer"); trl <= 0.8 took a plain
        # TrainingArguments -> a DPOConfig with the same values.
        if config is None:
            config = DPOConfig(output_dir="tmp_trainer")
        elif plain:
            as_dict = config.to_dict()
            as_dict.update({k: getattr(config, k) for k in as_dict if k.endswith("_token")})
            names = {f.name for f in dataclasses.fields(DPOConfig) if f.init}
            config = DPOConfig(**{k: v for k, v in as_dict.items() if k in names})
        fields = {f.name for f in dataclasses.fields(config)}
        ignored = []
        for key, value in moved.items():
            if key in fields:
                setattr(config, key, value)
            else:
                ignored.append(key)
        if len(args) > 3:
            args = args[:3] + (config,) + args[4:]
        else:
            kwargs["args"] = config
        warn_once(
            "trl-dpotrainer-config-args",
            f"You passed {sorted(moved) or 'a TrainingArguments'} to the DPOTrainer; trl moved these into "
            "`DPOConfig`. odin_compat set them on a DPOConfig; pass a `DPOConfig` instead."
            + (f" This trl has no config field for {ignored}: they were ignored." if ignored else ""),
        )
        return args, kwargs

    return kwarg_adapter(func, adapt, "trl-dpotrainer-config-args")


def _dpo_config_args_needed(module: ModuleType) -> bool:
    func = module.DPOTrainer.__init__
    return (
        not adapted(func, "trl-dpotrainer-config-args")
        and not accepts(func, "beta")
        and accepts(func, "args")
    )


REGISTRY.add(
    Record(
        id="trl-dpotrainer-config-args",
        affects="trl>=0.13.0",
        module="trl.trainer.dpo_trainer",
        name="DPOTrainer.__init__",
        kind="kwarg",
        fixes="TypeError: DPOTrainer.__init__() got an unexpected keyword argument 'beta' "
        "(also 'max_length', 'max_prompt_length', 'loss_type', ...; and args=TrainingArguments)",
        works="trl<0.13.0 (deprecated in 0.12; trl<=0.8 took them with a TrainingArguments)",
        breaks="trl>=0.13.0",
        upstream="trl v0.12.2 trl/trainer/dpo_trainer.py (the moves this adapter repeats); "
        "trl v0.8.6 trl/trainer/dpo_trainer.py",
        remove_when="callers pass these in DPOConfig",
        provide=_dpo_config_args,
        needed=_dpo_config_args_needed,
    )
)


# --- apply_chat_template(example, tokenizer=...) -> processing_class --------------------------------------------

for _func in ("apply_chat_template", "maybe_apply_chat_template"):
    _id = f"trl-{_func.replace('_', '-')}-tokenizer"
    REGISTRY.add(
        Record(
            id=_id,
            affects="trl>=0.12.0",
            module="trl.data_utils",
            name=_func,
            kind="kwarg",
            fixes=f"TypeError: {_func}() missing 1 required positional argument: 'processing_class' "
            "(called with tokenizer=...)",
            works="trl<0.12.0 (the parameter was named tokenizer)",
            breaks="trl>=0.12.0",
            upstream="trl v0.11.4 trl/data_utils.py; https://github.com/huggingface/trl/pull/2162 (processing_class)",
            remove_when="callers pass processing_class",
            provide=(
                lambda name, rid: (
                    lambda module: rename_kwarg(getattr(module, name), "tokenizer", "processing_class", rid)
                )
            )(_func, _id),
            needed=renaming(_func, "tokenizer", "processing_class"),
        )
    )


# --- trl.env_utils (a whole module: strtobool) ----------------------------------------------------------------


def strtobool(val: str) -> bool:
    """Convert a string representation of truth to True or False booleans.

    True values are 'y', 'yes', 't', 'true', 'on', and '1'; false values
    are 'n', 'no', 'f', 'false', 'off', and '0'.

    Raises:
        ValueError: if 'val' is anything else.
    """
    # Faithful copy of trl 0.12.2's function (trl/env_utils.py, the last release listed that had the module).
    val = val.lower()
    if val in ("y", "yes", "t", "true", "on", "1"):
        return True
    if val in ("n", "no", "f", "false", "off", "0"):
        return False
    raise ValueError(f"Invalid truth value, it should be a string but {val} was provided instead.")


def _env_utils(module: ModuleType) -> object:
    import sys
    import types

    env_utils = types.ModuleType(
        "trl.env_utils", "Backported by odin_compat: trl.env_utils (removed from trl)."
    )
    env_utils.strtobool = strtobool  # type: ignore[attr-defined]
    env_utils.__all__ = ["strtobool"]
    strtobool.__module__ = "trl.env_utils"
    sys.modules.setdefault("trl.env_utils", env_utils)
    return sys.modules["trl.env_utils"]


def _env_utils_needed(module: ModuleType) -> bool:
    return "env_utils" not in vars(module) and _no_module("trl.env_utils")


# Kind "wrap" for its `needed` gate, as trl-commands-cli-utils above.
REGISTRY.add(
    Record(
        id="trl-env-utils",
        affects="trl>=0.13",
        module="trl",
        name="env_utils",
        kind="wrap",
        needed=_env_utils_needed,
        fixes="ModuleNotFoundError: No module named 'trl.env_utils'",
        works="trl<=0.12.2 (trl.env_utils.strtobool)",
        breaks="trl>=0.13 (0.15.2 lacks the module)",
        upstream="https://github.com/huggingface/trl/blob/v0.12.2/trl/env_utils.py",
        remove_when="callers use their own strtobool",
        provide=_env_utils,
    )
)


# --- removed flags through trl's own copy of HfArgumentParser (trl/scripts/_hf_argparser.py) ------------------


def _trl_parse_args(module: ModuleType) -> object:
    from odin_compat.repairs.transformers import _parse_args

    return _parse_args(module)


def _trl_parse_args_needed(module: ModuleType) -> bool:
    return not adapted(
        module.HfArgumentParser.parse_args_into_dataclasses, "transformers-hfargparser-removed-flags"
    )


REGISTRY.add(
    Record(
        id="trl-hfargparser-removed-flags",
        affects="trl>=1.0",
        module="trl.scripts._hf_argparser",
        name="HfArgumentParser.parse_args_into_dataclasses",
        kind="wrap",
        fixes="ValueError: Some specified arguments are not used by the HfArgumentParser: ['--warmup_ratio', ...] "
        "(TrlParser, which parses with trl's own copy of HfArgumentParser)",
        works="trl releases whose TrlParser uses transformers' HfArgumentParser",
        breaks="trl 1.16.0 (trl/scripts/_hf_argparser.py)",
        upstream="trl v1.16.0 trl/scripts/_hf_argparser.py; see transformers-hfargparser-removed-flags",
        remove_when="callers pass the replacement flags",
        provide=_trl_parse_args,
        needed=_trl_parse_args_needed,
    )
)
