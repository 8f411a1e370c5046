"""Model loaders (filled by the model-zoo work)."""
