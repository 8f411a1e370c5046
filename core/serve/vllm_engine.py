"""``--infer_backend vllm``: vLLM generates, swiftune keeps the HTTP API, queue and routing.

vLLM loads the base model itself (a local folder or hub id) with LoRA enabled; each adapter is a
``LoRARequest`` (PEFT-format LoRA folders, as swiftune's lora tuner writes them). Rows of one batch
share one adapter, as with the transformers engine. A streamed answer arrives as one delta (vLLM's
offline API returns whole answers). Only the error for a missing vLLM is tested here: no vLLM runs
on the CPU machines this project is tested on.
"""

from __future__ import annotations

from typing import Any

from .engine import Engine, Job


class VllmEngine(Engine):
    def __init__(self, generator: Any, llm: Any, lora_paths: dict[str, str], **kwargs: Any) -> None:
        super().__init__(generator, **kwargs)
        self.llm = llm
        self.lora_ids = {name: i + 1 for i, name in enumerate(lora_paths)}
        self.lora_paths = lora_paths

    def run_batch(self, batch: list[Job]) -> None:
        from vllm import SamplingParams
        from vllm.lora.request import LoRARequest

        adapter = batch[0].adapter
        lora = LoRARequest(adapter, self.lora_ids[adapter], self.lora_paths[adapter]) if adapter else None
        params = [SamplingParams(temperature=j.temperature, top_p=j.top_p, max_tokens=j.max_new_tokens,
                                 min_tokens=j.min_tokens, stop=j.stops or None, seed=j.seed) for j in batch]
        outputs = self.llm.generate([{"prompt_token_ids": j.prompt} for j in batch], params,
                                    lora_request=lora, use_tqdm=False)
        self.batches_run += 1
        self.largest_batch = max(self.largest_batch, len(batch))
        for job, out in zip(batch, outputs):
            answer = out.outputs[0]
            text = answer.text.strip()
            if job.stream and text:
                job.send("delta", text)
            finish = "length" if answer.finish_reason == "length" else "stop"
            job.send("done", text, finish, len(job.prompt), len(answer.token_ids))


def build_vllm_engine(base: str, adapters: list[tuple[str, str]], *, template: str | None, trust_remote_code: bool,
                      max_model_len: int | None, **engine_kwargs: Any) -> tuple[VllmEngine, int]:
    """(engine, context length) for ``base`` served by vLLM with ``adapters`` as LoRA requests."""
    from transformers import AutoTokenizer
    from vllm import LLM

    from ..recipes import bridge
    from ..recipes.generation import Generator

    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=trust_remote_code)
    chosen = bridge.resolve_template(template, None, tokenizer)
    llm = LLM(model=base, enable_lora=bool(adapters), max_loras=max(1, len(adapters)), max_model_len=max_model_len,
              trust_remote_code=trust_remote_code)
    generator = Generator(model=None, tokenizer=tokenizer, template=chosen)
    limit = max_model_len or int(llm.llm_engine.model_config.max_model_len)
    return VllmEngine(generator, llm, dict(adapters), **engine_kwargs), limit
