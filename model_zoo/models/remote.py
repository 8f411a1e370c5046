"""Families whose architecture transformers does not implement: their hub repositories ship the
modelling code, so loading needs the user's ``--trust-remote-code`` / ``trust_remote_code=True``
(the family never turns it on by itself; ``swiftune list models`` says so). None of them can be built offline, so the family-coverage test skips them by design.
"""

from __future__ import annotations

from swiftune.model_family import ArchitectureKeys, ModelFamily

QWEN_KEYS = ArchitectureKeys(
    embedding="transformer.wte", layers="transformer.h", lm_head="lm_head", attention="attn", mlp="mlp"
)

FAMILIES: tuple[ModelFamily, ...] = (
    ModelFamily(
        name="qwen",
        description="Qwen (first generation) 7B / 14B, remote code (QWenLMHeadModel)",
        hf_ids=("Qwen/Qwen-7B", "Qwen/Qwen-7B-Chat", "Qwen/Qwen-14B-Chat"),
        ms_ids=("qwen/Qwen-7B", "qwen/Qwen-7B-Chat", "qwen/Qwen-14B-Chat"),
        architectures=("QWenLMHeadModel",),
        model_types=("qwen",),
        template="qwen",
        keys=QWEN_KEYS,
        target_modules=("c_attn", "c_proj", "w1", "w2"),
        trust_remote_code=True,
    ),
    ModelFamily(
        name="qwen-vl",
        description="Qwen-VL (first generation) chat, needs remote code; text-only training here (images in rows are "
                    "for qwen2-vl / qwen2.5-vl / llava); LoRA on the language model only",
        hf_ids=("Qwen/Qwen-VL", "Qwen/Qwen-VL-Chat"),
        ms_ids=("qwen/Qwen-VL", "qwen/Qwen-VL-Chat"),
        architectures=("QWenLMHeadModel",),
        model_types=("qwen",),
        parent="qwen",
        template="qwen",
        keys=QWEN_KEYS,
        # ``attn.c_proj`` keeps the visual tower's own ``mlp.c_proj`` out of the defaults.
        target_modules=("c_attn", "attn.c_proj", "w1", "w2"),
        trust_remote_code=True,
    ),
    ModelFamily(
        name="baichuan",
        description="Baichuan-7B / 13B and Baichuan2, remote code (fused W_pack projection)",
        hf_ids=(
            "baichuan-inc/Baichuan-7B",
            "baichuan-inc/Baichuan-13B-Base",
            "baichuan-inc/Baichuan-13B-Chat",
            "baichuan-inc/Baichuan2-7B-Chat",
        ),
        ms_ids=(
            "baichuan-inc/baichuan-7B",
            "baichuan-inc/Baichuan-13B-Base",
            "baichuan-inc/Baichuan-13B-Chat",
            "baichuan-inc/Baichuan2-7B-Chat",
        ),
        architectures=("BaichuanForCausalLM", "BaiChuanForCausalLM"),
        model_types=("baichuan",),
        template="baichuan",
        keys=ArchitectureKeys(
            embedding="model.embed_tokens", layers="model.layers", lm_head="lm_head", attention="self_attn", mlp="mlp"
        ),
        target_modules=("W_pack", "o_proj", "gate_proj", "up_proj", "down_proj"),
        trust_remote_code=True,
    ),
    ModelFamily(
        name="chatglm2",
        description="ChatGLM2-6B, remote code; its tokenizer builds the prompt (no swiftune template)",
        hf_ids=("THUDM/chatglm2-6b", "THUDM/chatglm2-6b-32k"),
        ms_ids=("ZhipuAI/chatglm2-6b", "ZhipuAI/chatglm2-6b-32k"),
        architectures=("ChatGLMModel", "ChatGLMForConditionalGeneration"),
        model_types=("chatglm",),
        template=None,
        keys=ArchitectureKeys(
            embedding="transformer.embedding.word_embeddings",
            layers="transformer.encoder.layers",
            lm_head="transformer.output_layer",
            attention="self_attention",
            mlp="mlp",
        ),
        target_modules=("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"),
        trust_remote_code=True,
    ),
    ModelFamily(
        name="internlm",
        description="InternLM (first generation) 7B / 20B, remote code",
        hf_ids=("internlm/internlm-7b", "internlm/internlm-chat-7b", "internlm/internlm-chat-20b"),
        ms_ids=(
            "Shanghai_AI_Laboratory/internlm-7b",
            "Shanghai_AI_Laboratory/internlm-chat-7b",
            "Shanghai_AI_Laboratory/internlm-chat-20b",
        ),
        architectures=("InternLMForCausalLM",),
        model_types=("internlm",),
        template="internlm",
        keys=ArchitectureKeys(
            embedding="model.embed_tokens", layers="model.layers", lm_head="lm_head", attention="self_attn", mlp="mlp"
        ),
        target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        trust_remote_code=True,
    ),
    ModelFamily(
        name="internlm2",
        description="InternLM2 / InternLM2.5 chat, remote code (fused wqkv)",
        hf_ids=("internlm/internlm2-chat-7b", "internlm/internlm2_5-7b-chat"),
        ms_ids=("Shanghai_AI_Laboratory/internlm2-chat-7b", "Shanghai_AI_Laboratory/internlm2_5-7b-chat"),
        architectures=("InternLM2ForCausalLM",),
        model_types=("internlm2",),
        template="chatml",
        keys=ArchitectureKeys(
            embedding="model.tok_embeddings", layers="model.layers", lm_head="output", attention="attention", mlp="feed_forward"
        ),
        target_modules=("wqkv", "wo", "w1", "w2", "w3"),
        trust_remote_code=True,
    ),
)
