"""The 'prefix' tuner plugin (being built; registers nothing yet)."""
