"""One FSDP2 training run of a tiny llama with a swiftune tuner (``tests/test_fsdp.py`` starts it).

    torchrun --nproc-per-node 2 tests/fsdp_worker.py lora OUT   # sharded over 2 ranks (gloo, CPU)
    python tests/fsdp_worker.py lora OUT                          # the same training in one process

Under torchrun each decoder layer and then the whole model go through ``fully_shard`` (FSDP2, the
wrapping accelerate's TRANSFORMER_BASED_WRAP applies on GPUs), each rank trains on its half of every
batch, and the adapter is saved the way ``SwiftTrainer`` saves one under FSDP2: every rank gathers
the shards (``swiftune.recipes.sharding.full_parameters``), rank 0 writes. Every row has the same
length and every token is labelled, so the mean of the two ranks' mean losses is the one-process
mean loss and both runs follow the same trajectory.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import LlamaConfig, LlamaForCausalLM

from swiftune import Swift
from swiftune.recipes.sharding import full_parameters

STEPS, ROWS, LENGTH, VOCAB = 3, 4, 12, 64
TUNERS = {"lora": {"tuner": "lora", "r": 4, "lora_alpha": 8, "target_modules": "all-linear"}, "full": {"tuner": "full"}}


def main(tuner: str, out: Path) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if world > 1 else 0
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False))
    swift = Swift.prepare(model, TUNERS[tuner])
    batches = torch.randint(0, VOCAB, (STEPS, ROWS, LENGTH), generator=torch.Generator().manual_seed(1))
    if world == 1:
        swift.save_pretrained(out / "initial")
    else:
        from torch.distributed.fsdp import fully_shard

        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(swift)
    trainable = [p for p in swift.parameters() if p.requires_grad]
    sharded = sum(1 for p in trainable if hasattr(p, "full_tensor"))
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    per_rank = ROWS // world
    losses = []
    for step in range(STEPS):
        ids = batches[step, rank * per_rank : (rank + 1) * per_rank]
        loss = swift(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()  # FSDP2 averages the gradients over the ranks (reduce-scatter)
        optimizer.step()
        optimizer.zero_grad()
        logged = loss.detach().clone()
        if world > 1:
            dist.all_reduce(logged)
            logged /= world
        losses.append(logged.item())
    with full_parameters(swift):  # what SwiftTrainer._save does on every rank under FSDP2
        if rank == 0:
            swift.save_pretrained(out / "final")
    if rank == 0:
        (out / "run.json").write_text(json.dumps({"world_size": world, "losses": losses, "sharded": sharded,
                                                  "trainable": len(trainable)}))
    if world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
