"""Training / inference recipes behind the CLI: sft, infer, export."""
