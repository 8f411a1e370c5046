"""Model families, chat templates, dataset adapters and registered datasets (filled by issue 3)."""
