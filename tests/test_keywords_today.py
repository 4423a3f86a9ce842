"""Keywords the API diff lists as gone from a signature that today's transformers still takes.

The static diff reads signatures; these keywords left them but are still absorbed through
``**kwargs`` without an error (some with upstream's own deprecation warning). Each is called here
on today's release, so the diff's coverage can count them as not breaking
(``tools/api_diff.py``: ``ACCEPTED_TODAY``).
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from tokenizers import Tokenizer, models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny")
    config = LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    vocab = Tokenizer(models.WordLevel({"a": 0, "<unk>": 1}, unk_token="<unk>"))
    tok = PreTrainedTokenizerFast(tokenizer_object=vocab, unk_token="<unk>")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder, model, tok


def calls(folder, model, tok):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, pipeline

    ids = torch.tensor([[0, 0, 0]])
    out = folder / "again"
    return {
        ("AutoConfig.from_pretrained", "use_auth_token"): lambda: AutoConfig.from_pretrained(folder, use_auth_token=None),
        ("AutoTokenizer.from_pretrained", "use_auth_token"): lambda: AutoTokenizer.from_pretrained(folder, use_auth_token=None),
        ("PreTrainedTokenizerBase.from_pretrained", "use_auth_token"): lambda: type(tok).from_pretrained(folder, use_auth_token=None),
        ("PreTrainedTokenizerBase.from_pretrained", "resume_download"): lambda: type(tok).from_pretrained(folder, resume_download=True),
        ("PreTrainedModel.from_pretrained", "_fast_init"): lambda: AutoModelForCausalLM.from_pretrained(folder, _fast_init=True),
        ("PreTrainedModel.from_pretrained", "low_cpu_mem_usage"): lambda: AutoModelForCausalLM.from_pretrained(folder, low_cpu_mem_usage=True),
        ("PreTrainedModel.from_pretrained", "mirror"): lambda: AutoModelForCausalLM.from_pretrained(folder, mirror=None),
        ("PreTrainedModel.from_pretrained", "offload_state_dict"): lambda: AutoModelForCausalLM.from_pretrained(folder, offload_state_dict=False),
        ("PreTrainedModel.save_pretrained", "safe_serialization"): lambda: model.save_pretrained(out, safe_serialization=True),
        ("PreTrainedModel.save_pretrained", "save_function"): lambda: model.save_pretrained(out, save_function=torch.save),
        ("PreTrainedModel.save_pretrained", "save_config"): lambda: model.save_pretrained(out, save_config=True),
        ("PreTrainedModel.save_pretrained", "ignore_metadata_errors"): lambda: model.save_pretrained(out, ignore_metadata_errors=True),
        ("GenerationMixin.generate", "num_return_sequences"): lambda: model.generate(ids, max_new_tokens=1, num_return_sequences=1),
        ("GenerationMixin.generate", "tokenizer"): lambda: model.generate(ids, max_new_tokens=1, tokenizer=tok),
        ("GenerationMixin.generate", "assistant_tokenizer"): lambda: model.generate(ids, max_new_tokens=1, assistant_tokenizer=None),
        ("pipeline", "torch_dtype"): lambda: pipeline("text-generation", model=str(folder), torch_dtype=torch.float32),
        ("pipeline", "_commit_hash"): lambda: pipeline("text-generation", model=str(folder), _commit_hash=None),
        ("pipeline", "code_revision"): lambda: pipeline("text-generation", model=str(folder), code_revision=None),
        ("pipeline", "framework"): lambda: pipeline("text-generation", model=str(folder), framework="pt"),
    }  # fmt: skip


def test_todays_transformers_still_takes_these_keywords(saved) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from api_diff import ACCEPTED_TODAY

    table = calls(*saved)
    assert set(table) == set(ACCEPTED_TODAY)  # the tool's list and what is called here agree
    failed = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, call in table.items():
            try:
                call()
            except Exception as exc:  # noqa: BLE001  (collect them all)
                failed[key] = f"{type(exc).__name__}: {exc}"
    assert failed == {}
