"""The 'adapter' tuner plugin (being built; registers nothing yet)."""
