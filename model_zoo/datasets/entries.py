"""Registered hub datasets: the ones ModelScope SWIFT ships, by name, with their hub ids.

They are downloaded on first use, so they need a network (their description says so and the
offline error says how to use a local copy instead). Ids and column layouts follow the public
dataset cards; ``adapter=None`` lets the loader detect the layout from the columns it finds.
"""

from __future__ import annotations

from swiftune.dataset import DatasetEntry

_QR = "query-response"

ENTRIES: tuple[DatasetEntry, ...] = (
    DatasetEntry("alpaca-en", "GPT-4 answers to the 52k Alpaca instructions (English)", "alpaca",
                 ms_id="AI-ModelScope/alpaca-gpt4-data-en", hf_id="vicgalle/alpaca-gpt4", tags=("chat", "general")),
    DatasetEntry("alpaca-zh", "GPT-4 answers to the Alpaca instructions (Chinese)", "alpaca",
                 ms_id="AI-ModelScope/alpaca-gpt4-data-zh", hf_id="llm-wizard/alpaca-gpt4-data-zh", tags=("chat", "general")),
    DatasetEntry("multi-alpaca-all", "PolyLM multilingual Alpaca (11 languages)", "alpaca",
                 ms_id="damo/nlp_polylm_multialpaca_sft",
                 subsets=("ar", "de", "es", "fr", "id", "ja", "ko", "pt", "ru", "th", "vi"), tags=("chat", "multilingual")),
    DatasetEntry("code-en", "Code Alpaca 20k programming instructions", "alpaca",
                 ms_id="wyj123456/code_alpaca_en", hf_id="sahil2801/CodeAlpaca-20k", tags=("chat", "coding")),
    DatasetEntry("finance-en", "Alpaca-style finance questions and answers", "alpaca",
                 ms_id="wyj123456/finance_en", hf_id="gbharti/finance-alpaca", tags=("chat", "financial")),
    DatasetEntry("instinwild-en", "Instruction in the Wild, English part", None,
                 ms_id="wyj123456/instinwild", subsets=("subset",), tags=("chat", "general")),
    DatasetEntry("instinwild-zh", "Instruction in the Wild, Chinese part", None,
                 ms_id="wyj123456/instinwild", subsets=("default",), tags=("chat", "general")),
    DatasetEntry("cot-en", "chain-of-thought instructions (English)", None, ms_id="YorickHe/CoT", tags=("chat", "reasoning")),
    DatasetEntry("cot-zh", "chain-of-thought instructions (Chinese)", None, ms_id="YorickHe/CoT_zh", tags=("chat", "reasoning")),
    DatasetEntry("firefly-all-zh", "Firefly 1.1M Chinese instructions over 23 tasks", _QR,
                 ms_id="wyj123456/firefly", hf_id="YeungNLP/firefly-train-1.1M",
                 columns={"input": "query", "target": "response"}, tags=("chat", "general")),
    DatasetEntry("poetry-zh", "classical Chinese poems (continued pre-training)", "text",
                 ms_id="modelscope/chinese-poetry-collection", columns={"text1": "text"}, tags=("text-generation", "poetry")),
    DatasetEntry("instruct-en", "prompt / completion instructions (English)", _QR,
                 ms_id="wyj123456/instruct", columns={"prompt": "query", "completion": "response"}, tags=("chat", "general")),
    DatasetEntry("gpt4all-en", "GPT4All-J prompt generations", _QR,
                 ms_id="wyj123456/GPT4all", hf_id="nomic-ai/gpt4all-j-prompt-generations",
                 columns={"prompt": "query"}, tags=("chat", "general")),
    DatasetEntry("cmnli-zh", "CLUE CMNLI natural language inference (sentence pairs)", "classification",
                 ms_id="clue", hf_id="clue/clue", subsets=("cmnli",),
                 columns={"sentence1": "text", "sentence2": "text_pair"}, tags=("classification", "nli")),
    DatasetEntry("jd-zh", "JD.com product review sentiment (Chinese)", "classification",
                 ms_id="DAMO_NLP/jd", columns={"sentence": "text"}, tags=("classification", "sentiment")),
    DatasetEntry("dureader-robust-zh", "DuReader robust question generation", _QR,
                 ms_id="modelscope/DuReader_robust-QG", columns={"text1": "query", "text2": "response"}, tags=("chat", "qa")),
    DatasetEntry("medical-en", "medical dialogues (English part)", None,
                 ms_id="huangjintao/medical_zh", subsets=("en",), tags=("chat", "medical")),
    DatasetEntry("medical-zh", "medical dialogues (Chinese part)", None,
                 ms_id="huangjintao/medical_zh", subsets=("zh",), tags=("chat", "medical")),
    DatasetEntry("sharegpt-en", "ShareGPT conversations (English: common, computer)", "sharegpt",
                 ms_id="huangjintao/sharegpt", subsets=("common-en", "computer-en"),
                 columns={"conversation": "conversations"}, tags=("chat", "multi-turn")),
    DatasetEntry("sharegpt-zh", "ShareGPT conversations (Chinese: common, computer, unknown)", "sharegpt",
                 ms_id="huangjintao/sharegpt", subsets=("common-zh", "computer-zh", "unknow-zh"),
                 columns={"conversation": "conversations"}, tags=("chat", "multi-turn")),
    DatasetEntry("code-python-zh", "CodeFuse Python exercises (27k, multi-turn)", "messages",
                 ms_id="codefuse-ai/CodeExercise-Python-27k", hf_id="codefuse-ai/CodeExercise-Python-27k",
                 columns={"chat_rounds": "messages"}, tags=("chat", "coding")),
    DatasetEntry("advertise-gen", "AdvertiseGen: product attributes -> advertising copy (Chinese)", _QR,
                 ms_id="lvjianjin/AdvertiseGen", hf_id="shibing624/AdvertiseGen",
                 columns={"content": "query", "summary": "response"}, tags=("text-generation",)),
    DatasetEntry("damo-agent-zh", "MSAgent-Bench tool-use conversations", "sharegpt",
                 ms_id="damo/MSAgent-Bench", tags=("chat", "agent")),
    DatasetEntry("cls-fudan-news-zh", "Fudan news classification as instructions", _QR,
                 ms_id="damo/zh_cls_fudan-news", columns={"prompt": "query", "answer": "response"}, tags=("chat", "classification")),
    DatasetEntry("ner-jave-zh", "JAVE product attribute NER as instructions", _QR,
                 ms_id="damo/zh_ner-JAVE", columns={"prompt": "query", "answer": "response"}, tags=("chat", "ner")),
    DatasetEntry("coco-en", "COCO 2014 captions (images need a vision-language model; text adapters keep the caption)", "text",
                 ms_id="modelscope/coco_2014_caption", subsets=("coco_2014_caption",),
                 columns={"caption": "text"}, tags=("multi-modal", "caption")),
)
