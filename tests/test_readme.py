"""The README's Python quickstart runs as written and does what it says."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_quickstart_runs(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python block"
    code = blocks[0].replace("/tmp/swiftune-quickstart", str(tmp_path / "qs"))
    code += (
        "\nassert isinstance(merged, LlamaForCausalLM)"
        "\nassert not torch.equal(base_logits, merged(input_ids=ids).logits)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "trainable params:" in out.stdout
    assert (tmp_path / "qs" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "qs" / "adapter_config.json").is_file()
