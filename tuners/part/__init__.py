"""The 'part' tuner plugin (being built; registers nothing yet)."""
