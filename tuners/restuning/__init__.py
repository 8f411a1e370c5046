"""The 'restuning' tuner plugin (being built; registers nothing yet)."""
