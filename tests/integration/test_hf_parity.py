"""rxf.hf and the fairseq plugin compute the same R3F on the same weights: the imported all-MiniLM-L6-v2 in both."""

import json
import os

import pytest
import torch
from transformers import BertForSequenceClassification

from rxf.hf import input_embedding_and_scope
from rxf.kl import symmetric_kl
from rxf.noise import noised_token_embeddings
from tests.helpers import HF_NO_DROPOUT

NO_DROPOUT = HF_NO_DROPOUT


def test_parity_with_the_fairseq_plugin_on_the_imported_minilm(minilm):
    """The same MiniLM weights in fairseq (rxf-import-hf) and in transformers, the head copied across: the same
    logits, and with dropout 0 the same mean R3F term over many noise draws (each framework draws its own)."""
    from fairseq import checkpoint_utils
    from transformers import AutoTokenizer

    import rxf_fairseq  # noqa: F401
    from rxf_fairseq.model_parts import find_encoder_token_embedding

    source = json.load(open(minilm / "import.json"))["source"]
    theirs = BertForSequenceClassification.from_pretrained(source, num_labels=3, **NO_DROPOUT).eval()
    models, _, _ = checkpoint_utils.load_model_ensemble_and_task(
        [str(minilm / "model.pt")], arg_overrides={"data": str(minilm)}
    )
    ours = models[0].eval()
    ours.register_classification_head("parity", num_classes=3)
    head = ours.classification_heads["parity"]
    with torch.no_grad():  # fairseq's head is BERT's pooler + classifier: dense, tanh, linear on the first token
        head.dense.weight.copy_(theirs.bert.pooler.dense.weight)
        head.dense.bias.copy_(theirs.bert.pooler.dense.bias)
        head.out_proj.weight.copy_(theirs.classifier.weight)
        head.out_proj.bias.copy_(theirs.classifier.bias)
    sentences = ["Linear probes read what an encoder knows.", "It rained.", "A noun names a thing."]
    tokenized = AutoTokenizer.from_pretrained(source)(sentences, padding=True, return_tensors="pt")
    vocab = (minilm / "vocab.txt").read_text(encoding="utf-8").splitlines()
    index = {"[CLS]": 0, "[PAD]": 1, "[SEP]": 2, "[UNK]": 3}
    for i, line in enumerate((minilm / "dict.txt").read_text(encoding="utf-8").splitlines()):
        index[line.rsplit(" ", 1)[0]] = 4 + i
    tokens = torch.tensor([[index[vocab[i]] for i in row] for row in tokenized["input_ids"].tolist()])
    tokens[~tokenized["attention_mask"].bool()] = 1

    def fairseq_logits():
        return ours(tokens, features_only=True, classification_head_name="parity")[0]

    def hf_logits():
        return theirs(**tokenized).logits

    with torch.no_grad():
        clean_ours, clean_theirs = fairseq_logits(), hf_logits()
        assert (clean_ours - clean_theirs).abs().max() <= 1e-3
        # each draw seeded alike for both: the same noise tensor (the embeddings have the same shape), so the
        # comparison is of the term, not of two samples of it (one draw's term varies by ~60%)
        eps, draws = 1e-2, 50
        terms = {"fairseq": [], "transformers": []}
        for draw in range(draws):
            torch.manual_seed(draw)
            with noised_token_embeddings(*find_encoder_token_embedding(ours), eps, "uniform"):
                terms["fairseq"].append(symmetric_kl(clean_ours, fairseq_logits()).item())
            torch.manual_seed(draw)
            with noised_token_embeddings(*input_embedding_and_scope(theirs), eps, "uniform"):
                terms["transformers"].append(symmetric_kl(clean_theirs, hf_logits()).item())
    means = {k: sum(v) / draws for k, v in terms.items()}
    ratios = torch.tensor(terms["transformers"]) / torch.tensor(terms["fairseq"])
    print(
        f"\nmean R3F term over {draws} draws at eps {eps}: {means}; per-draw ratio {ratios.min():.4f}-{ratios.max():.4f}"
    )
    assert means["fairseq"] > 0 and means["transformers"] == pytest.approx(means["fairseq"], rel=0.05)
    assert (ratios - 1).abs().max() < 0.01  # draw by draw, too
    assert os.path.basename(source)  # the source folder the import recorded
