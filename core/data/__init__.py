"""Dataset loading and tokenization (filled by the model-zoo work)."""
