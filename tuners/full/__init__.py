"""The 'full' tuner plugin (being built; registers nothing yet)."""
