"""The 'qlora' tuner plugin (being built; registers nothing yet)."""
