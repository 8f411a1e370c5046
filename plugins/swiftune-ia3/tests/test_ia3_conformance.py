"""The shared conformance suite (swiftune.testing) on the ia3 tuner: the plugin author's one-liner,
plus the PEFT-style layout where feed-forward layers scale their input."""

from swiftune.testing import conformance_tests

test_ia3_conformance = conformance_tests("ia3")

test_ia3_feedforward_conformance = conformance_tests(
    "ia3",
    models=["llama", "gpt2"],
    config={"target_modules": ["k_proj", "v_proj", "down_proj", "c_attn", "c_proj", "c_fc"],
            "feedforward_modules": ["down_proj", "mlp.c_proj"]},
)
