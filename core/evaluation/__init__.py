"""``swiftune eval``'s measures: answers compared with references (``metrics``) and the model's own
log-likelihoods (``likelihood``: multiple-choice accuracy, perplexity)."""
