"""The 'side' tuner plugin (being built; registers nothing yet)."""
