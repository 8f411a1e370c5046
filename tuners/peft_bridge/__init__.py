"""The 'peft_bridge' tuner plugin (being built; registers nothing yet)."""
