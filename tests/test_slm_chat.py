"""Chat rows: every assistant turn of a conversation is trained (TRL's assistant_only_loss)."""

import odin_compat  # noqa: F401,I001  (first, as in the trainer)

import pytest

pytest.importorskip("transformers")

from _hf_cache import tiny_tokenizer  # noqa: E402
from odin_slm import data  # noqa: E402
from odin_slm.data import IGNORE_INDEX, Row  # noqa: E402

CHAT = [
    {"role": "system", "content": "Answer with the result only."},
    {"role": "user", "content": "Rewrite 2024-01-02 as DD/MM/YYYY."},
    {"role": "assistant", "content": "02/01/2024"},
    {"role": "user", "content": "Rewrite 2024-01-05 as DD/MM/YYYY."},
    {"role": "assistant", "content": "05/01/2024"},
]


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def trained_text(tok, row):
    ids, labels = row["input_ids"], row["labels"]
    return tok.decode([i for i, lab in zip(ids, labels, strict=True) if lab != IGNORE_INDEX])


def test_every_assistant_turn_is_trained(tok):
    (row,) = data.tokenize([Row({"messages": CHAT}, "t:1")], "messages", tok, None)
    text = trained_text(tok, row)
    assert "02/01/2024<|im_end|>" in text and "05/01/2024<|im_end|>" in text
    assert "Rewrite" not in text and "system" not in text and "user" not in text
    # The tokens are the whole rendered chat, in order.
    assert tok.decode(row["input_ids"]) == tok.apply_chat_template(CHAT, tokenize=False)


def test_single_turn_rows_are_tokenized_as_before(tok):
    msgs = CHAT[:3]
    (row,) = data.tokenize([Row({"messages": msgs}, "t:1")], "messages", tok, None)
    prompt, target = data.split_prompt({"messages": msgs}, "messages", tok)
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    t_ids = tok(target, add_special_tokens=False)["input_ids"]
    assert row["input_ids"] == p_ids + t_ids and row["labels"] == [IGNORE_INDEX] * len(p_ids) + t_ids


def test_truncation_keeps_the_first_turn(tok):
    (full,) = data.tokenize([Row({"messages": CHAT}, "t:1")], "messages", tok, None)
    first_end = len(
        tok(tok.apply_chat_template(CHAT[:3], tokenize=False), add_special_tokens=False)["input_ids"]
    )
    (cut,) = data.tokenize([Row({"messages": CHAT}, "t:1")], "messages", tok, first_end)
    assert cut["input_ids"] == full["input_ids"][:first_end] and "02/01/2024" in trained_text(tok, cut)


CONVERSATIONAL = {
    "prompt": [
        {"role": "system", "content": "Answer with the result only."},
        {"role": "user", "content": "Rewrite 2024-01-02 as DD/MM/YYYY."},
    ],
    "completion": [{"role": "assistant", "content": "02/01/2024"}],
}


def test_conversational_prompt_completion_rows(tok):
    rows = [Row(CONVERSATIONAL, "t:1"), Row(CONVERSATIONAL, "t:2")]
    assert data.validate(rows) == "chat-prompt-completion"
    (row,) = data.tokenize(rows[:1], "chat-prompt-completion", tok, None)
    # Rendered as the whole chat, trained on the completion only, scored against its answer.
    chat = CONVERSATIONAL["prompt"] + CONVERSATIONAL["completion"]
    assert tok.decode(row["input_ids"]) == tok.apply_chat_template(chat, tokenize=False)
    assert trained_text(tok, row) == "02/01/2024<|im_end|>\n"
    assert data.reference(CONVERSATIONAL, "chat-prompt-completion") == "02/01/2024"
    prompt, _ = data.split_prompt(CONVERSATIONAL, "chat-prompt-completion", tok)
    assert prompt.endswith("<|im_start|>assistant\n")


def test_conversational_rows_are_checked(tok):
    bad = {"prompt": [{"role": "user"}], "completion": [{"role": "assistant", "content": "x"}]}
    with pytest.raises(data.DataError, match=r"t:3: 'prompt'\[0\] must have string 'role' and 'content'"):
        data.validate([Row(bad, "t:3")])
    not_assistant = {**CONVERSATIONAL, "completion": [{"role": "user", "content": "x"}]}
    with pytest.raises(data.DataError, match="t:4: the completion must end with the assistant"):
        data.validate([Row(not_assistant, "t:4")])
