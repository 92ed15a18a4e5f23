"""The paper's Section 4 protocols as plans (rxf_repro/protocols.py): the order of the steps, the checkpoint each
starts from, its folder, its overrides and its probe record's field, checked without running anything. One protocol
runs for real: tests/integration/test_probing.py::test_the_degradation_protocol_end_to_end."""

from rxf_repro import protocols

SET = ["criterion.r3f_lambda=0.5", "optimization.max_update=30"]
STEPS = protocols.Steps("/r", SET, ["++criterion.noise_type=normal"], ["dataset.batch_size=4"])
PROBE_OVERRIDES = ("optimization.max_update=30", "dataset.batch_size=4")  # --set without criterion.*, --probe-set


def summary(plan):
    """(action, task, folder under /r, where it starts from: 'pretrained' or the folder of the step it continues)."""

    def short(path):
        return path[3:] if path.startswith("/r/") else path

    return [(s.action, s.task, short(s.run_dir), short(s.restore).replace("/checkpoint_best.pt", "")) for s in plan]


def probes(plan):
    return [
        (s.probe["cycle"], s.probe["step"], s.probe["source"], s.task, s.probe["finetuned_on"]) for s in plan if s.probe
    ]


def test_generalisation_fine_tunes_the_source_then_probes_each_task_on_its_encoder():
    plan = protocols.plan("generalisation", "r3f", STEPS, "/m.pt", source="sst_2", probes=["mrpc", "cola"])
    assert summary(plan) == [
        ("finetune", "sst_2", "finetune-SST-2", "/m.pt"),
        ("probe", "mrpc", "probe-MRPC", "finetune-SST-2"),
        ("probe", "cola", "probe-CoLA", "finetune-SST-2"),
    ]
    finetune = plan[0]
    assert not finetune.chained  # from the pretrained model: an ordinary GLUE run (record.json, Table 2)
    assert finetune.overrides == (
        *SET,
        "++criterion.classification_head_name=sst_2_head",
        "++criterion.noise_type=normal",
    )
    assert all(s.overrides == PROBE_OVERRIDES for s in plan[1:])
    assert probes(plan) == [(1, 0, "SST-2", "mrpc", "SST-2"), (1, 0, "SST-2", "cola", "SST-2")]
    assert plan[1].probe["protocol"] == "generalisation" and plan[1].probe["chain"] == ["SST-2"]
    default = protocols.plan("generalisation", "r3f", STEPS, "/m.pt", source="sst_2")
    assert [s.task for s in default] == ["sst_2", "mnli", "qnli", "qqp", "rte", "mrpc", "cola"]  # Section 4.1


def test_degradation_chains_the_fine_tunes_and_probes_the_source_after_each():
    plan = protocols.plan("degradation", "r4f", STEPS, "/m.pt", source="sst_2", chain=["sst_2", "qnli", "rte"])
    assert summary(plan) == [
        ("finetune", "sst_2", "step0-SST-2", "/m.pt"),
        ("probe", "sst_2", "step0-probe-SST-2", "step0-SST-2"),
        ("finetune", "qnli", "step1-QNLI", "step0-SST-2"),
        ("probe", "sst_2", "step1-probe-SST-2", "step1-QNLI"),
        ("finetune", "rte", "step2-RTE", "step1-QNLI"),
        ("probe", "sst_2", "step2-probe-SST-2", "step2-RTE"),
    ]
    assert all(s.chained for s in plan if s.action == "finetune")  # finetune.json, only the best checkpoint kept
    assert [s.overrides[len(SET)] for s in plan if s.action == "finetune"] == [
        f"++criterion.classification_head_name={t}_head"
        for t in ("sst_2", "qnli", "rte")  # a fresh head each step
    ]
    assert probes(plan) == [
        (1, 0, "SST-2", "sst_2", "SST-2"),
        (1, 1, "SST-2", "sst_2", "QNLI"),
        (1, 2, "SST-2", "sst_2", "RTE"),
    ]
    assert plan[1].probe["chain"] == ["SST-2", "QNLI", "RTE"]
    default = protocols.plan("degradation", "r4f", STEPS, "/m.pt", source="sst_2")
    assert [s.task for s in default if s.action == "finetune"] == ["sst_2", "qnli", "qqp", "rte"]  # Sections 4.2-4.3


def test_retention_probes_each_task_before_it_is_fine_tuned_again():
    plan = protocols.plan("retention", "r3f", STEPS, "/m.pt", source="sst_2", chain=["sst_2", "qnli"], cycles=2)
    assert summary(plan) == [
        ("probe", "sst_2", "cycle1-step0/probe-SST-2", "/m.pt"),
        ("finetune", "sst_2", "cycle1-step0/finetune-SST-2", "/m.pt"),
        ("probe", "qnli", "cycle1-step1/probe-QNLI", "cycle1-step0/finetune-SST-2"),
        ("finetune", "qnli", "cycle1-step1/finetune-QNLI", "cycle1-step0/finetune-SST-2"),
        ("probe", "sst_2", "cycle2-step0/probe-SST-2", "cycle1-step1/finetune-QNLI"),
        ("finetune", "sst_2", "cycle2-step0/finetune-SST-2", "cycle1-step1/finetune-QNLI"),
        ("probe", "qnli", "cycle2-step1/probe-QNLI", "cycle2-step0/finetune-SST-2"),
        ("finetune", "qnli", "cycle2-step1/finetune-QNLI", "cycle2-step0/finetune-SST-2"),
    ]
    assert probes(plan) == [
        (1, 0, "SST-2", "sst_2", "pretrained"),
        (1, 1, "SST-2", "qnli", "SST-2"),
        (2, 0, "SST-2", "sst_2", "QNLI"),
        (2, 1, "SST-2", "qnli", "SST-2"),
    ]
    assert len(protocols.plan("retention", "r3f", STEPS, "/m.pt", source="sst_2")) == 3 * 4 * 2  # 3 cycles of 4


def test_method_none_probes_the_pretrained_model_itself():
    plan = protocols.plan("generalisation", "none", STEPS, "/m.pt", source="sst_2")
    assert [s.task for s in plan] == ["sst_2", "mnli", "qnli", "qqp", "rte", "mrpc", "cola"]
    assert {(s.action, s.restore, s.overrides) for s in plan} == {("probe", "/m.pt", PROBE_OVERRIDES)}
    assert plan[0].run_dir == "/r/probe-SST-2"
    assert {(p[2], p[4]) for p in probes(plan)} == {("SST-2", "none")}
    chosen = protocols.plan("generalisation", "none", STEPS, "/m.pt", source="wn_pos", probes=["wn_lex"])
    assert [(s.task, s.probe["source"]) for s in chosen] == [("wn_lex", "WN-POS")]


def test_r_drop_and_r3fs_controls_get_r3fs_plan_their_setting_on_the_fine_tunes_only():
    """rxf-run probe PROTOCOL rdrop (or r3f-no-noise, r3f-same-dropout): the protocol's steps do not depend on the
    method; its setting (R-Drop's alpha) goes to the fine-tunes, and no criterion.* of it to a probe."""
    steps = protocols.Steps("/r", ["criterion.rdrop_alpha=0.5", "optimization.max_update=30"], ["++criterion.x=1"])
    for method in ("rdrop", "r3f-no-noise", "r3f-same-dropout"):
        plan = protocols.plan("retention", method, steps, "/m.pt", source="sst_2", chain=["sst_2", "rte"], cycles=2)
        reference = protocols.plan("retention", "r3f", steps, "/m.pt", source="sst_2", chain=["sst_2", "rte"], cycles=2)
        assert plan == reference
        assert all("++criterion.x=1" in s.overrides for s in plan if s.action == "finetune")
        assert all(s.overrides == ("optimization.max_update=30",) for s in plan if s.action == "probe")
