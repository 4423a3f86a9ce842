"""From transformers 4.57.1: the `Trainer.tokenizer` property. Its warnings are issued once
(warning_once) rather than on every access.

Source: https://github.com/huggingface/transformers/blob/v4.57.1/src/transformers/trainer.py
"""

from transformers.utils import logging

logger = logging.get_logger("transformers.trainer")


def tokenizer(self):
    logger.warning_once(
        "Trainer.tokenizer is now deprecated. You should use Trainer.processing_class instead."
    )
    return self.processing_class


def set_tokenizer(self, processing_class) -> None:
    logger.warning_once(
        "Trainer.tokenizer is now deprecated. You should use `Trainer.processing_class = processing_class` instead."
    )
    self.processing_class = processing_class
