"""swiftune's side-by-side benchmarks against PEFT (``python -m bench``; ``make bench``)."""
