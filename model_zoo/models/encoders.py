"""Encoder and encoder-decoder families: the tasks beyond causal LM (classification, seq2seq, vision)."""

from __future__ import annotations

from swiftune.model_family import ArchitectureKeys, ModelFamily


def _image_classifier(
    name: str, description: str, hf_ids: tuple[str, ...], class_prefix: str, *,
    layers: str, attention: str | None, mlp: str | None,
) -> ModelFamily:
    """A transformers image classifier (``<Prefix>ForImageClassification`` / ``<Prefix>Model``): patch
    embeddings, a ``classifier`` head, and LoRA targets under both the 5.x names (q/k/v/o_proj,
    mlp.fc1/fc2) and the 4.x ones (query/key/value, dense)."""
    return ModelFamily(
        name=name,
        description=description,
        hf_ids=hf_ids,
        architectures=(f"{class_prefix}ForImageClassification", f"{class_prefix}Model"),
        model_types=(name,),
        task="image-classification",
        keys=ArchitectureKeys(
            embedding="embeddings.patch_embeddings", layers=layers, lm_head="classifier", attention=attention, mlp=mlp
        ),
        target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2", "query", "key", "value", "dense"),
    )


FAMILIES: tuple[ModelFamily, ...] = (
    ModelFamily(
        name="bert",
        description="BERT encoders; fine-tune a classification head with modules_to_save=['classifier']",
        hf_ids=("google-bert/bert-base-uncased", "google-bert/bert-base-cased", "google-bert/bert-base-chinese"),
        architectures=(
            "BertForSequenceClassification",
            "BertForTokenClassification",
            "BertForMaskedLM",
            "BertForPreTraining",
            "BertModel",
        ),
        model_types=("bert",),
        task="sequence-classification",
        # BERT splits its MLP: ``intermediate`` (up + activation) then the block's ``output`` (down).
        keys=ArchitectureKeys(
            embedding="embeddings.word_embeddings",
            layers="encoder.layer",
            lm_head="classifier",
            attention="attention",
            mlp="intermediate",
        ),
        target_modules=("query", "key", "value", "dense"),
    ),
    ModelFamily(
        name="t5",
        description="T5 / Flan-T5 encoder-decoder (conditional generation)",
        hf_ids=("google-t5/t5-small", "google-t5/t5-base", "google/flan-t5-small", "google/flan-t5-base"),
        architectures=("T5ForConditionalGeneration", "T5Model"),
        model_types=("t5",),
        task="seq2seq-lm",
        keys=ArchitectureKeys(
            embedding="shared",
            layers="encoder.block",
            lm_head="lm_head",
            attention="layer.0.SelfAttention",
            mlp="layer.1.DenseReluDense",
        ),
        # ``wi`` for T5, ``wi_0`` / ``wi_1`` for the gated feed-forward of T5 v1.1 and Flan-T5.
        target_modules=("q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"),
    ),
    ModelFamily(
        name="bart",
        description="BART encoder-decoder (summarisation, conditional generation)",
        hf_ids=("facebook/bart-base", "facebook/bart-large", "facebook/bart-large-cnn"),
        architectures=("BartForConditionalGeneration", "BartModel"),
        model_types=("bart",),
        task="seq2seq-lm",
        # BART's feed-forward is two bare linears (fc1, fc2) in each layer: no MLP module.
        keys=ArchitectureKeys(
            embedding="model.shared", layers="model.encoder.layers", lm_head="lm_head", attention="self_attn", mlp=None
        ),
        target_modules=("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"),
    ),
    _image_classifier(
        "vit",
        "Vision Transformer image classifiers; train the head with modules_to_save=['classifier']",
        ("google/vit-base-patch16-224", "google/vit-base-patch16-224-in21k"),
        "ViT",
        # transformers 5.x renamed ViT's modules (encoder.layer.N.attention.attention.query ->
        # layers.N.attention.q_proj, intermediate/output.dense -> mlp.fc1/fc2): both spellings work.
        layers="layers|encoder.layer",
        attention="attention",
        mlp="mlp|intermediate",
    ),
    _image_classifier(
        "swin",
        "Swin Transformer image classifiers; swiftune sft --task image-classification trains a new head",
        ("microsoft/swin-tiny-patch4-window7-224", "microsoft/swin-base-patch4-window7-224"),
        "Swin",
        layers="encoder.layers",
        # A Swin stage (an element of ``layers``) holds several blocks, each with its attention and
        # MLP: no single path inside a stage names them.
        attention=None,
        mlp=None,
    ),
)
