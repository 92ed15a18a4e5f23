"""rxf-rouge on real English text (the GNU licenses every Debian machine carries)."""

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

from rxf_repro import cli
from rxf_repro import rouge as rxf_rouge
from tests.helpers import REPO, call_main
from tests.pipelines import kill_group

LICENSES = "/usr/share/common-licenses"


def paragraphs(name):
    text = open(os.path.join(LICENSES, name), encoding="utf-8").read()
    paras = [re.sub(r"\s+", " ", p).strip() for p in text.split("\n\n")]
    return [p for p in paras if len(p.split()) > 25]


def tokenise(text):
    return " ".join(re.sub(r"([.,;:()\"?!])", r" \1 ", text).split())


@pytest.fixture(scope="session")
def rouge_cache(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("rouge-home"))
    os.environ["RXF_ROUGE_HOME"] = cache
    return cache


@pytest.fixture(scope="session")
def real_pairs(tmp_path_factory):
    """References: 60 paragraphs of GPL-3. Summaries: for each, the GPL-2 paragraph sharing most of
    its words (real text, partly overlapping, written by neither us nor a model)."""
    gpl3, gpl2 = paragraphs("GPL-3")[:60], paragraphs("GPL-2")
    refs, summs = [], []
    for p in gpl3:
        words = set(p.lower().split())
        best = max(gpl2, key=lambda q: len(words & set(q.lower().split())) / len(set(q.lower().split())))
        refs.append(tokenise(p))
        summs.append(tokenise(best))
    root = tmp_path_factory.mktemp("pairs")
    (root / "ref.txt").write_text("\n".join(refs) + "\n")
    (root / "sum.txt").write_text("\n".join(summs) + "\n")
    return str(root / "ref.txt"), str(root / "sum.txt")


def run_cli(*args):
    """``rxf-rouge ARGS...`` as its ``main``, in this process (the script itself runs in a fresh interpreter in
    ``test_sigterm_stops_rouge_and_removes_its_temporary_files`` and the import test)."""
    return call_main(rxf_rouge.main, args, "rxf-rouge")


def test_wordnet_exceptions_db_has_5930_keys(rouge_cache):
    home = rxf_rouge.rouge_home()
    assert home.startswith(rouge_cache)
    assert rxf_rouge.wordnet_db_keys(os.path.join(home, "data", "WordNet-2.0.exc.db")) == 5930


def spl_direct_invocation(documents, eos, tmp_path):
    """ROUGE-1.5.5 run by hand: sentence-per-line (SPL) files and our own config, no pyrouge HTML."""
    home = rxf_rouge.rouge_home()
    config = ['<ROUGE-EVAL version="1.55">']
    for task, (i, ref, summ) in enumerate(sorted(documents, key=lambda d: f"s.{d[0]}.txt"), start=1):
        for kind, text in (("m", ref), ("s", summ)):
            sentences = [s for s in rxf_rouge.split_sentences(text, eos) if s]
            (tmp_path / f"{kind}{i}.spl").write_text("\n".join(sentences) + "\n")
        config.append(
            f'<EVAL ID="{task}"><MODEL-ROOT>{tmp_path}</MODEL-ROOT><PEER-ROOT>{tmp_path}</PEER-ROOT>'
            f'<INPUT-FORMAT TYPE="SPL"></INPUT-FORMAT><PEERS><P ID="1">s{i}.spl</P></PEERS>'
            f'<MODELS><M ID="A">m{i}.spl</M></MODELS></EVAL>'
        )
    config.append("</ROUGE-EVAL>")
    (tmp_path / "config.xml").write_text("\n".join(config))
    return subprocess.run(
        [
            "perl",
            os.path.join(home, "ROUGE-1.5.5.pl"),
            "-e",
            os.path.join(home, "data"),
            "-c",
            "95",
            "-r",
            "1000",
            "-n",
            "2",
            "-a",
            "-m",
            str(tmp_path / "config.xml"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_perl_backend_equals_a_direct_rouge_invocation(rouge_cache, real_pairs, tmp_path):
    documents, _ = rxf_rouge.read_documents(*real_pairs)
    plain = [d for d in documents if "<" not in d[1] + d[2]]
    assert len(plain) >= 50
    ours = rxf_rouge.perl_rouge(plain, ".")
    (tmp_path / "plain").mkdir()
    assert ours == spl_direct_invocation(plain, ".", tmp_path / "plain")  # every digit, intervals included
    assert set(rxf_rouge.parse_report(ours)) == {"ROUGE-1", "ROUGE-2", "ROUGE-L"}
    # files2rouge's quirk, kept: pyrouge's unescaped HTML cuts a sentence at '<' ("<https : //fsf . org/>")
    (tmp_path / "all").mkdir()
    assert rxf_rouge.perl_rouge(documents, ".") != spl_direct_invocation(documents, ".", tmp_path / "all")


def test_python_backend_within_a_point_of_perl(rouge_cache, real_pairs):
    documents, _ = rxf_rouge.read_documents(*real_pairs)
    perl = rxf_rouge.parse_report(rxf_rouge.perl_rouge(documents, "."))
    python = rxf_rouge.python_rouge(documents, ".")
    for measure in ("ROUGE-1", "ROUGE-2", "ROUGE-L"):
        for short in "RPF":
            p, q = perl[measure][short][0], python[measure][short][0]
            print(f"{measure} {short}: perl {p:.5f} python {q:.5f} diff {q - p:+.5f}")
            assert abs(p - q) <= 0.01, (measure, short, p, q)


# ROUGE-1.5.5 with -m maps a word longer than 3 letters through the WordNet exceptions, else through
# Porter; the exception's base form is not Porter-stemmed again. So children/child and feet/foot match
# with a correct DB and not with an empty one, while mice/mouse and geese/goose never match
# ("mouse" itself is Porter-stemmed to "mous"). ROUGE-1 recall of "the X ." against "the Y .":
IRREGULAR = [
    ("children", "child", 1.0, 0.5),
    ("feet", "foot", 1.0, 0.5),
    ("mice", "mouse", 0.5, 0.5),
    ("geese", "goose", 0.5, 0.5),
]


def one_word_documents(tmp_path, reference_word, summary_word):
    (tmp_path / "ref").write_text(f"the {reference_word} .\n")
    (tmp_path / "sum").write_text(f"the {summary_word} .\n")
    return rxf_rouge.read_documents(str(tmp_path / "ref"), str(tmp_path / "sum"))[0]


def empty_wordnet_data(tmp_path):
    """What files2rouge's set-up builds: the script run from outside its folder gives 0 keys."""
    broken = tmp_path / "data"
    shutil.copytree(os.path.join(rxf_rouge.rouge_home(), "data"), broken)
    os.remove(broken / "WordNet-2.0.exc.db")
    exc = broken / "WordNet-2.0-Exceptions"
    subprocess.run(
        ["perl", str(exc / "buildExeptionDB.pl"), str(exc), "exc", str(broken / "WordNet-2.0.exc.db")],
        cwd=str(tmp_path),
        capture_output=True,
    )
    assert rxf_rouge.wordnet_db_keys(str(broken / "WordNet-2.0.exc.db")) == 0
    return broken


def test_wordnet_exceptions_score_as_rouge_155_with_a_correct_db(rouge_cache, tmp_path):
    broken = empty_wordnet_data(tmp_path)
    for reference_word, summary_word, with_db, with_empty_db in IRREGULAR:
        documents = one_word_documents(tmp_path, reference_word, summary_word)
        recall = lambda report: rxf_rouge.parse_report(report)["ROUGE-1"]["R"][0]  # noqa: E731
        assert recall(rxf_rouge.perl_rouge(documents, ".")) == with_db, reference_word
        assert (
            recall(rxf_rouge.perl_rouge(documents, ".", rouge_args=f"-e {broken} -c 95 -r 1000 -n 2 -a -m"))
            == with_empty_db
        ), reference_word
        assert recall(rxf_rouge.perl_rouge(documents, ".", stemming=False)) == 0.5


def test_cli_report_format_and_saveto(rouge_cache, real_pairs, tmp_path):
    out = tmp_path / "scores.txt"
    for backend in ("perl", "python"):
        proc = run_cli(*real_pairs, "--backend", backend, "-s", str(out))
        assert proc.returncode == 0, proc.stderr
        lines = [line for line in proc.stdout.splitlines() if "Average" in line]
        assert [line.split()[1:3] for line in lines] == [
            [m, f"Average_{s}:"] for m in ("ROUGE-1", "ROUGE-2", "ROUGE-L") for s in "RPF"
        ]
        assert re.fullmatch(r"1 ROUGE-1 Average_R: 0\.\d{5} \(95%-conf\.int\. 0\.\d{5} - 0\.\d{5}\)", lines[0])
        assert out.read_text() == proc.stdout


def test_files2rouge_options_n_nol_and_a(rouge_cache, real_pairs):
    for backend in ("perl", "python"):
        proc = run_cli(*real_pairs, "--backend", backend, "-n", "3", "-nol", "-q")
        assert proc.returncode == 0, proc.stderr
        assert sorted(rxf_rouge.parse_report(proc.stdout)) == ["ROUGE-1", "ROUGE-2", "ROUGE-3"]
    default = run_cli(*real_pairs, "-q").stdout
    assert run_cli(*real_pairs, "-q", "-a", "-c 95 -r 1000 -n 2 -a").stdout == default  # -m still appended
    assert (
        run_cli(*real_pairs, "-q", "-a", "-c 95 -r 1000 -n 2 -a", "-nm").stdout
        == run_cli(*real_pairs, "-q", "-nm").stdout
    )
    for bad, message in ((["--args=-c 95 -n 2", "-n", "3"], "cannot be combined"), (["-m"], "stemming is the default")):
        proc = run_cli(*real_pairs, *bad)
        assert proc.returncode == 2 and message in proc.stderr


def test_bad_input_is_refused_with_file_and_line(rouge_cache, tmp_path):
    ref, summ = tmp_path / "ref", tmp_path / "sum"
    ref.write_text("a b .\nc d .\n")
    summ.write_text("a b .\n")
    proc = run_cli(str(ref), str(summ))
    assert proc.returncode == 1 and "has 2 lines but" in proc.stderr and proc.stdout == ""
    summ.write_text("a b .\n\n")
    proc = run_cli(str(ref), str(summ))
    assert proc.returncode == 1 and f"{summ}:2: empty line (pass -is" in proc.stderr
    proc = run_cli(str(ref), str(summ), "-is", "--backend", "python")
    assert proc.returncode == 0 and "1 skipped" in proc.stderr
    proc = run_cli(str(ref), str(tmp_path / "missing"))
    assert proc.returncode == 1 and "summary file not found" in proc.stderr


def test_missing_perl_module_gives_the_install_command(tmp_path, monkeypatch):
    fake = tmp_path / "perl"
    fake.write_text("#!/bin/sh\nexit 2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with pytest.raises(cli.UserError, match="apt-get install -y libxml-parser-perl libwww-perl"):
        rxf_rouge.check_perl()


@pytest.mark.parametrize(
    "raw,tokenized",
    [
        (
            'Mr. Smith (the mayor) said "we can\'t stop now." He arrived at 5 p.m. yesterday; the U.S. team won 3-1... '
            "It cost $5.50!",
            "Mr. Smith -LRB- the mayor -RRB- said `` we ca n't stop now . '' He arrived at 5 p.m. yesterday ; the U.S. "
            "team won 3-1 ... It cost $ 5.50 !",
        ),
        (
            "The licenses are free. By contrast, the GPL is not.",
            "The licenses are free . By contrast , the GPL is not .",
        ),
        ('He said: "Go." Then left.', "He said : `` Go . '' Then left ."),
    ],
)
def test_ptb_tokenize_follows_ptb_conventions(raw, tokenized):
    assert rxf_rouge.ptb_tokenize(raw) == tokenized


def test_ptb_tokenize_command_preserves_lines_and_rouge_flag_uses_it(rouge_cache, tmp_path):
    raw = "One sentence. Another one.\n\nA third (short) one.\n"
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from rxf_repro import rouge; sys.exit(rouge.ptb_tokenize_main())"],
        input=raw,
        capture_output=True,
        text=True,
    )
    assert proc.stdout == "One sentence . Another one .\n\nA third -LRB- short -RRB- one .\n"
    (tmp_path / "ref").write_text("The cat sat down. Dogs were barking loudly.\n")
    (tmp_path / "sum").write_text("Dogs were barking loudly. The cat sat down.\n")
    untokenized = rxf_rouge.parse_report(run_cli(str(tmp_path / "ref"), str(tmp_path / "sum"), "-q").stdout)
    tokenized = rxf_rouge.parse_report(
        run_cli(str(tmp_path / "ref"), str(tmp_path / "sum"), "-q", "--ptb-tokenize").stdout
    )
    # without tokenisation no " ." separates the sentences: ROUGE-L compares one long sentence with
    # another and the swapped order costs half; split into sentences, each is matched whole
    assert tokenized["ROUGE-1"]["F"][0] == untokenized["ROUGE-1"]["F"][0] == 1.0
    assert untokenized["ROUGE-L"]["F"][0] < 0.75 and tokenized["ROUGE-L"]["F"][0] == 1.0


# ---------------------------------------------------------------------------------- issue 14


def one_line_error(proc, tool="rxf-rouge"):
    """The single stderr line of a refused command (exit 1, nothing on stdout, no traceback)."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert proc.stdout in ("", b"") and "Traceback" not in str(proc.stderr)
    lines = str(proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode()).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{tool}: error: "), proc.stderr
    return lines[0]


def test_importing_the_scorer_imports_neither_fairseq_nor_torch():
    check = (
        "import sys; from rxf_repro import rouge; assert 'fairseq' not in sys.modules and 'torch' not in sys.modules"
    )
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr


def test_a_lone_carriage_return_is_text_not_a_line_break(rouge_cache, tmp_path):
    ref, summ = tmp_path / "ref", tmp_path / "sum"
    # the case: a 2-line reference (a lone \r inside line 1) against a 3-line summary; text mode's
    # universal newlines read 3 reference lines and scored the shifted pairs, exit 0
    ref.write_bytes(b"the cat sat .\rthe dog ran .\nbirds fly high .\n")
    summ.write_bytes(b"the cat sat .\nthe dog ran .\nbirds fly high .\n")
    assert f"{ref} has 2 lines but {summ} has 3" in one_line_error(run_cli(str(ref), str(summ)))
    # with a 2-line summary it is scored as 2 documents, the \r as the whitespace it is
    summ.write_bytes(b"the cat sat . the dog ran .\nbirds fly low .\n")
    spaced = tmp_path / "spaced"
    spaced.write_bytes(b"the cat sat . the dog ran .\nbirds fly high .\n")
    proc = run_cli(str(ref), str(summ))
    assert proc.returncode == 0 and "Scoring 2 documents" in proc.stderr, proc.stderr
    assert proc.stdout == run_cli(str(spaced), str(summ), "-q").stdout
    # a \r\n ending is one line end: a CRLF file scores as its LF twin
    crlf = tmp_path / "crlf"
    crlf.write_bytes(spaced.read_bytes().replace(b"\n", b"\r\n"))
    assert rxf_rouge.read_lines(str(crlf)) == ["the cat sat . the dog ran .", "birds fly high ."]
    assert run_cli(str(crlf), str(summ), "-q").stdout == run_cli(str(spaced), str(summ), "-q").stdout


def test_bytes_that_are_not_utf8_are_one_line_naming_file_line_and_offset(tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_bytes(b"a cafe .\nb c .\n")
    bad.write_bytes(b"a cafe .\nb caf\xe9 .\n")  # Latin-1; byte offset 9 + 5
    message = one_line_error(run_cli(str(good), str(bad)))
    assert f"{bad}:2: not UTF-8 (byte 0xe9 at byte offset 14" in message and "iconv" in message
    assert f"{bad}:2:" in one_line_error(run_cli(str(bad), str(good)))
    bad.write_bytes(b"a \xed\xa0\x80 .\nb c .\n")  # an encoded lone surrogate is not UTF-8 either
    assert f"{bad}:1: not UTF-8 (byte 0xed at byte offset 2" in one_line_error(run_cli(str(bad), str(good)))


def test_ptb_tokenize_reads_utf8_bytes_and_refuses_others_before_any_output():
    command = [sys.executable, "-c", "import sys; from rxf_repro import rouge; sys.exit(rouge.ptb_tokenize_main())"]
    proc = subprocess.run(command, input=b"Fine line.\nCaf\xe9 au lait.\n", capture_output=True)
    assert "<stdin>:2: not UTF-8 (byte 0xe9 at byte offset 14" in one_line_error(proc, "rxf-ptb-tokenize")
    # UTF-8 in, UTF-8 out, whatever the locale says; lines end at \n only
    env = dict(os.environ, LC_ALL="C", LANG="C", PYTHONIOENCODING="ascii", PYTHONUTF8="0")
    proc = subprocess.run(command, input="Café (noir).\rDone.\n".encode(), capture_output=True, env=env)
    assert proc.returncode == 0 and proc.stdout.decode() == "Café -LRB- noir -RRB- . Done .\n", proc.stderr


def test_a_line_past_the_size_limit_is_refused_with_file_line_and_limit(tmp_path):
    ref, summ = tmp_path / "ref", tmp_path / "sum"
    ref.write_text("a b .\nc d .\n")
    summ.write_bytes(b"a b .\n" + b"w" * 99 + b"\r\n")  # 99 bytes, and a CRLF end that does not count
    assert run_cli(str(ref), str(summ), "--max-line-bytes", "99", "-q").returncode == 0
    message = one_line_error(run_cli(str(ref), str(summ), "--max-line-bytes", "98"))
    assert f"{summ}:2: line longer than the limit of 98 bytes" in message and "--max-line-bytes N" in message
    # the default: 32 KiB, refused before ROUGE-L's quadratic table is built (1.2 MB lines were OOM-killed)
    assert rxf_rouge.DEFAULT_MAX_LINE_BYTES == 32768
    summ.write_bytes(b"a b .\n" + b"w " * 600_000 + b"\n")
    ref.write_bytes(b"a b .\n" + b"w " * 600_000 + b"\n")
    message = one_line_error(run_cli(str(ref), str(summ)))
    assert f"{ref}:2: line longer than the limit of 32768 bytes" in message
    ref.write_bytes(b"a b .\n" + b"w " * 20_000 + b"\n")  # 40 kB
    summ.write_bytes(b"a b .\n" + b"w " * 20_000 + b"\n")
    assert "limit of 32768 bytes" in one_line_error(run_cli(str(ref), str(summ)))
    assert run_cli(str(ref), str(summ), "--max-line-bytes", "0", "--no-rouge-l", "-q").returncode == 0  # no limit
    # a file whose lines end with \r alone is one long line: said so
    ref.write_bytes(b"a b .\r" * 10)
    assert "tr '\\r' '\\n'" in one_line_error(run_cli(str(ref), str(summ), "--max-line-bytes", "20"))


def test_save_to_makes_missing_folders_and_replaces_a_report_atomically(tmp_path):
    (tmp_path / "ref").write_text("the cat sat .\nbirds fly high .\n")
    (tmp_path / "sum").write_text("the cats sat down .\nbirds fly low .\n")
    pair = str(tmp_path / "ref"), str(tmp_path / "sum")
    out = tmp_path / "missing" / "sub" / "rouge.txt"
    proc = run_cli(*pair, "--save-to", str(out))
    assert proc.returncode == 0 and out.read_text() == proc.stdout, proc.stderr
    assert os.listdir(out.parent) == ["rouge.txt"]  # no temporary file left beside it
    # an earlier report is replaced by a rename, never rewritten in place: a reader (here, a hard link)
    # holding the old file sees it whole
    os.link(out, tmp_path / "old-report")
    proc = run_cli(*pair, "-nm", "-s", str(out))
    assert proc.returncode == 0 and out.read_text() == proc.stdout != (tmp_path / "old-report").read_text()
    assert (tmp_path / "old-report").read_text().count("Average_F") == 3
    assert sorted(os.listdir(out.parent)) == ["rouge.txt"]


def test_save_to_refuses_before_scoring_what_it_must_not_replace(tmp_path):
    (tmp_path / "ref").write_text("the cat sat .\n")
    (tmp_path / "sum").write_text("the cat sat down .\n")
    pair = str(tmp_path / "ref"), str(tmp_path / "sum")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    message = one_line_error(run_cli(*pair, "-s", str(notes)))
    assert f"--save-to {notes}: exists and is not an earlier ROUGE report" in message and "--overwrite" in message
    assert notes.read_text() == "my notes\n"
    assert run_cli(*pair, "-q", "-s", str(notes), "--overwrite").returncode == 0
    assert "Average_F" in notes.read_text()
    for target, expected in ((tmp_path, "is a folder"), (tmp_path / "ref", "is the input")):
        message = one_line_error(run_cli(*pair, "--saveto", str(target), "--overwrite"))
        assert message.startswith(f"rxf-rouge: error: --save-to {target}: {expected}")
    assert (tmp_path / "ref").read_text() == "the cat sat .\n"
    message = one_line_error(run_cli(*pair, "-s", str(notes / "sub" / "rouge.txt")))
    assert f"--save-to {notes / 'sub' / 'rouge.txt'}: {notes} is not a folder" in message
    assert "ends with /; give the report's file name" in one_line_error(run_cli(*pair, "-s", f"{tmp_path}/new/"))
    assert not (tmp_path / "new").exists()
    os.symlink(notes, tmp_path / "link")
    assert "is a symbolic link" in one_line_error(run_cli(*pair, "-s", str(tmp_path / "link")))


def test_every_option_has_help_text():
    for action in rxf_rouge.build_parser()._actions:
        assert action.help and action.help != argparse.SUPPRESS and len(action.help) > 15, action.option_strings
    backend = next(a for a in rxf_rouge.build_parser()._actions if "--backend" in a.option_strings)
    assert "ROUGE-1.5.5" in backend.help and "rouge-score" in backend.help


PROJECT_SPELLINGS = [
    "--rouge-n",
    "3",
    "--no-rouge-l",
    "--no-stemming",
    "--ignore-empty-reference",
    "--ignore-empty-summary",
    "--save-to",
    "out.txt",
]
FILES2ROUGE_SHORT = ["-n", "3", "-nol", "-nm", "-ir", "-is", "-s", "out.txt"]
FILES2ROUGE_LONG = [
    "--rouge_n",
    "3",
    "--no_rouge_l",
    "--no_stemming",
    "--ignore_empty_reference",
    "--ignore_empty_summary",
    "--saveto",
    "out.txt",
]


def test_project_spellings_and_files2rouge_aliases_mean_the_same(tmp_path):
    parse = lambda flags: vars(rxf_rouge.build_parser().parse_args(["ref", "sum", *flags]))  # noqa: E731
    assert parse(PROJECT_SPELLINGS) == parse(FILES2ROUGE_SHORT) == parse(FILES2ROUGE_LONG) != parse([])
    assert parse(PROJECT_SPELLINGS) | {
        "rouge_n": 2,
        "no_rouge_l": False,
        "no_stemming": False,
        "saveto": None,
        "ignore_empty_reference": False,
        "ignore_empty_summary": False,
    } == parse([])
    (tmp_path / "ref").write_text("the cat sat .\n\nbirds fly high .\n")
    (tmp_path / "sum").write_text("the cats sat down .\nnothing .\n\n")
    pair = str(tmp_path / "ref"), str(tmp_path / "sum")
    reports = []
    for flags in (PROJECT_SPELLINGS, FILES2ROUGE_SHORT, FILES2ROUGE_LONG):
        flags = [str(tmp_path / f) if f == "out.txt" else f for f in flags]
        proc = run_cli(*pair, "-q", *flags)
        assert proc.returncode == 0, proc.stderr
        reports.append((proc.stdout, (tmp_path / "out.txt").read_text()))
    assert reports[0] == reports[1] == reports[2]
    assert sorted(rxf_rouge.parse_report(reports[0][0])) == ["ROUGE-1", "ROUGE-2", "ROUGE-3"]
    assert rxf_rouge.parse_report(reports[0][0])["ROUGE-1"]["R"][0] == 0.66667  # unstemmed "cats" misses: the, sat of 3


def rouge_children(pid):
    """pids of the running ROUGE-1.5.5.pl processes whose parent is ``pid``."""
    found = []
    for child in psutil.Process(pid).children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if any("ROUGE-1.5.5.pl" in part for part in child.cmdline()):
                found.append(child.pid)
    return found


def test_sigterm_stops_rouge_and_removes_its_temporary_files(rouge_cache, tmp_path):
    """SIGTERM while ROUGE-1.5.5.pl scores (``exit_on_sigterm``: SystemExit through ``perl_rouge``'s ``finally``,
    which stops the perl child and removes the temporary folder): exit 143, nothing on stdout, nothing left. Ctrl-C
    raises KeyboardInterrupt at the same point, through the same ``finally``; what is its own, the exit status and
    the message, is ``test_ctrl_c_is_130_and_says_nothing_was_written``."""
    rxf_rouge.rouge_home()  # built beforehand: the perl child we wait for is ROUGE itself
    words = [f"w{i}" for i in range(400)]
    rng = random.Random(1)
    for name in ("ref", "sum"):  # minutes of scoring: ROUGE surely runs when the signal lands
        (tmp_path / name).write_text("".join(" ".join(rng.choices(words, k=60)) + " .\n" for _ in range(3000)))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rxf_repro.rouge", str(tmp_path / "ref"), str(tmp_path / "sum")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, TMPDIR=str(tmp)),
    )
    children = []
    try:
        deadline = time.monotonic() + 120
        while not (children := rouge_children(proc.pid)) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert children, "ROUGE-1.5.5.pl never started"
        assert os.listdir(tmp)  # its documents and config
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in children:  # ROUGE runs in a process group of its own: gone unless the test failed
            kill_group(pid)
    assert proc.returncode == 143, stderr
    assert stdout == "" and "Traceback" not in stderr
    assert not any(os.path.exists(f"/proc/{pid}") for pid in children)  # stopped and reaped
    assert os.listdir(tmp) == []


def test_ctrl_c_is_130_and_says_nothing_was_written(tmp_path, monkeypatch):
    (tmp_path / "ref").write_text("the cat sat .\n")
    (tmp_path / "sum").write_text("the cat sat down .\n")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rxf_rouge.command, "perl_rouge", interrupted)
    proc = run_cli(str(tmp_path / "ref"), str(tmp_path / "sum"), "-s", str(tmp_path / "rouge.txt"))
    assert proc.returncode == 130 and proc.stdout == ""
    assert proc.stderr.strip().splitlines()[-1] == "rxf-rouge: interrupted; nothing was written"
    assert sorted(os.listdir(tmp_path)) == ["ref", "sum"]


def test_benchmark_commands_for_the_readme_numbers_run(tmp_path):
    root = REPO
    env = dict(os.environ, PYTHONPATH=root)  # the checkout's rxf_repro, whatever is installed

    def run(*a):
        return subprocess.run(
            [sys.executable, os.path.join(root, "benchmarks", "rouge.py"), *a],  # noqa: E731
            capture_output=True,
            text=True,
            cwd=root,
            env=env,
        )

    timing = run("timing", "--documents", "30", "--backend", "perl", "--out", str(tmp_path / "t.json"))
    assert timing.returncode == 0, timing.stderr
    result = json.loads(timing.stdout)
    assert result["date"] and result["machine"] and result["result"]["perl"]["seconds"] > 0
    assert json.loads((tmp_path / "t.json").read_text()) == result
    limit = json.loads(run("limit", "--bytes", "3000", "--backend", "perl").stdout)["result"]["3000"]
    assert limit["tokens"] > 300 and limit["perl"]["peak_mib"] > 10 and 0.3 < limit["perl"]["rouge_l_f"] < 0.7
    ptb = json.loads(run("ptb").stdout)["result"]
    assert ptb["lines"] == 120 and 90 < ptb["aligned_of_ours_pct"] <= 100
