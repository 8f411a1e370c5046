"""The 'prompt' tuner plugin (being built; registers nothing yet)."""
