"""`finetune` end to end on a tiny base: outputs, logs, the loss it optimises, --resume, CLI errors."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from ohlora import config
from ohlora.errors import OhloraError
from ohlora.heads import finetune as ft
from ohlora.heads.dataset import IGNORE_INDEX, head_examples, load_rows, tokenize_example
from ohlora.heads.finetune import FinetuneConfig, finetune

FAST = dict(epochs=1, rank=4, batch_size=2, lr=1e-2, max_valid_generations=2)


def _read(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _cfg(tmp_path, persona_csv, base, **kw):
    return FinetuneConfig(**{"head": "all", "data": persona_csv, "out": str(tmp_path / "heads"), "base": base, **FAST, **kw})


def test_all_heads_write_adapters_logs_and_config(tiny_lm_dir, persona_csv, tmp_path, monkeypatch):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    import ohlora.models

    loads = []
    real_load = ohlora.models.load_causal_lm
    monkeypatch.setattr(ohlora.models, "load_causal_lm", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    done = finetune(_cfg(tmp_path, persona_csv, tiny_lm_dir))
    assert len(loads) == 1  # one base for all four heads
    out = tmp_path / "heads"
    assert list(done) == list(config.HEADS)
    saved = json.loads((out / "finetune_config.json").read_text(encoding="utf-8"))
    assert saved["base"] == tiny_lm_dir and saved["head_epochs"] == {h: 1 for h in config.HEADS}
    for head in config.HEADS:
        folder = out / head
        assert done[head] == folder
        assert (folder / "adapter_config.json").exists() and (folder / "adapter_model.safetensors").exists()
        (log,) = _read(folder / "train_log.csv")
        assert list(log) == ["epoch", "time", "loss", "grad_norm", "learning_rate", "mean_token_accuracy"]
        assert log["epoch"] == "1" and float(log["loss"]) > 0 and 0 <= float(log["mean_token_accuracy"]) <= 1
        gens = _read(folder / "valid_generations.csv")
        assert [g["epoch"] for g in gens] == ["1"] * len(gens)
        # memory/output_message read both valid inputs (capped at 2); the others need a reply the valid rows lack
        assert len(gens) == (2 if head in ("output_message", "memory") else 0)
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_lm_dir), folder)
        lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
        assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # trained (B starts at zero)


def test_valid_generations_hold_the_inputs(tiny_lm_dir, persona_csv, tmp_path):
    finetune(_cfg(tmp_path, persona_csv, tiny_lm_dir, head="memory", max_valid_generations=None))
    gens = _read(tmp_path / "heads" / "memory" / "valid_generations.csv")
    assert [g["input"] for g in gens] == ["로라야 오늘 뭐 했어?", "[좋아하는 가수: 아이유] 요즘 무슨 노래 들어?"]
    assert all("(답변 종료)" not in g["generated"] for g in gens)  # cut at the end marker


def test_the_loop_optimises_mean_cross_entropy_over_completion_tokens_only(tiny_lm_dir, persona_csv):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = AutoModelForCausalLM.from_pretrained(tiny_lm_dir), AutoTokenizer.from_pretrained(tiny_lm_dir)
    rows = load_rows(persona_csv)
    feats = [tokenize_example(tok, e["prompt"], e["completion"], 256) for e in head_examples(rows, "summary")]
    batch = collate(feats[:3], tok.pad_token_id) if (collate := ft.collate) else None
    widths = [len(f["input_ids"]) for f in feats[:3]]
    assert batch["input_ids"].shape == (3, max(widths))
    for i, w in enumerate(widths):  # right padding, out of attention and loss
        assert batch["attention_mask"][i, w:].sum() == 0 and (batch["labels"][i, w:] == IGNORE_INDEX).all()
    with torch.no_grad():
        loss = model(**batch).loss
        logits = model(**batch).logits
    # By hand: next-token cross-entropy averaged over positions whose target is an answer token.
    total, count = 0.0, 0
    for i, f in enumerate(feats[:3]):
        n_prompt = len(tok(f_prompt := head_examples(rows, "summary")[i]["prompt"])["input_ids"])
        assert tok.decode(f["input_ids"][:n_prompt]) == f_prompt
        for t in range(n_prompt, len(f["input_ids"])):
            total += -torch.log_softmax(logits[i, t - 1], -1)[f["input_ids"][t]].item()
            count += 1
    assert loss.item() == pytest.approx(total / count, rel=1e-4)


def test_length_grouping_reduces_padding_and_keeps_every_example():
    feats = [{"input_ids": [0] * n} for n in [3, 40, 4, 38, 5, 41, 2, 39]]
    for grouping in ("length", "none"):
        got = ft.batches(feats, 2, grouping, seed=1)
        assert sorted(len(f["input_ids"]) for b in got for f in b) == sorted(len(f["input_ids"]) for f in feats)
    padded = {g: sum(2 * max(len(f["input_ids"]) for f in b) for b in ft.batches(feats, 2, g, seed=1)) for g in ("length", "none")}
    assert padded["length"] == 2 * (41 + 39 + 5 + 3)  # pairs of neighbours in length
    assert padded["length"] < padded["none"]


def test_resume_continues_after_the_last_finished_epoch(tiny_lm_dir, persona_csv, tmp_path, monkeypatch):
    """A 2-epoch run interrupted after epoch 1 and resumed ends with the same adapter as an
    uninterrupted run; epoch 1 is not trained again; a finished head is skipped."""
    from safetensors.torch import load_file

    kw = dict(head="eyes_mouth_pose", epochs=2, generate_valid=False)
    straight = finetune(_cfg(tmp_path / "a", persona_csv, tiny_lm_dir, **kw))["eyes_mouth_pose"]

    real_save = ft._save_checkpoint
    calls = []

    def save_then_crash(*args, **kwargs):
        real_save(*args, **kwargs)
        calls.append(1)
        raise KeyboardInterrupt  # the machine went away after epoch 1 was saved

    monkeypatch.setattr(ft, "_save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        finetune(_cfg(tmp_path / "b", persona_csv, tiny_lm_dir, **kw))
    monkeypatch.setattr(ft, "_save_checkpoint", real_save)
    folder = tmp_path / "b" / "heads" / "eyes_mouth_pose"
    (epoch1,) = _read(folder / "train_log.csv")

    trained_epochs = []
    real_batches = ft.batches
    monkeypatch.setattr(ft, "batches", lambda *a, **k: trained_epochs.append(k["seed"]) or real_batches(*a, **k))
    resumed = finetune(_cfg(tmp_path / "b", persona_csv, tiny_lm_dir, resume=True, **kw))["eyes_mouth_pose"]
    assert trained_epochs == [42 * 1000 + 1]  # only the second epoch ran
    log = _read(folder / "train_log.csv")
    assert [r["epoch"] for r in log] == ["1", "2"] and log[0] == epoch1
    a, b = load_file(str(straight / "adapter_model.safetensors")), load_file(str(resumed / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    assert _read(straight / "train_log.csv")[1]["loss"] == log[1]["loss"]

    trained_epochs.clear()  # resuming a finished head trains nothing
    finetune(_cfg(tmp_path / "b", persona_csv, tiny_lm_dir, resume=True, **kw))
    assert trained_epochs == [] and _read(folder / "train_log.csv") == log


def test_resume_refuses_a_checkpoint_of_other_settings(tiny_lm_dir, persona_csv, tmp_path):
    finetune(_cfg(tmp_path, persona_csv, tiny_lm_dir, head="memory", generate_valid=False))
    with pytest.raises(OhloraError, match="rank 4 -> 8"):
        finetune(_cfg(tmp_path, persona_csv, tiny_lm_dir, head="memory", rank=8, resume=True))


def test_a_tiny_llama_base_trains_on_its_q_k_v(tiny_llama_dir, persona_csv, tmp_path):
    done = finetune(_cfg(tmp_path, persona_csv, tiny_llama_dir, head="summary"))
    cfg = json.loads((done["summary"] / "adapter_config.json").read_text(encoding="utf-8"))
    assert set(cfg["target_modules"]) == {"q_proj", "k_proj", "v_proj"} and cfg["r"] == 4


def test_cli_unreachable_base_is_one_line_exit_2(persona_csv, tmp_path, capsys):
    from ohlora.cli import main

    code = main(["finetune", "all", "--data", persona_csv, "--out", str(tmp_path / "o"), "--base", "no-such-org/no-such-model"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("ohlora: error:")
    assert "no-such-org/no-such-model" in err and "--base" in err
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_cli_bad_data_fails_before_loading_a_model(tmp_path, capsys):
    from ohlora.cli import main

    bad = tmp_path / "bad.csv"
    bad.write_text("data_type,input_data\ntrain,안녕\n", encoding="utf-8")
    assert main(["finetune", "memory", "--data", str(bad), "--out", str(tmp_path / "o"), "--base", "no/such"]) == 1
    err = capsys.readouterr().err
    assert "bad.csv:1" in err and "no/such" not in err


def test_cli_flags_reach_the_config(tiny_lm_dir, persona_csv, tmp_path, monkeypatch):
    from ohlora.cli import main

    seen = {}
    monkeypatch.setattr(ft, "finetune", lambda cfg: seen.setdefault("cfg", cfg) and {})
    argv = ["finetune", "memory", "--data", persona_csv, "--out", str(tmp_path), "--base", tiny_lm_dir]
    assert main(argv + ["--epochs", "2", "--rank", "16", "--lr", "0.001", "--batch-size", "8", "--resume"]) == 0
    cfg = seen.pop("cfg")
    assert (cfg.head, cfg.epochs, cfg.rank, cfg.lr, cfg.batch_size, cfg.resume) == ("memory", 2, 16, 0.001, 8, True)
    assert (cfg.alpha, cfg.dropout, cfg.grouping) == (16, 0.05, "length")  # SPEC §2 defaults untouched
    assert main(argv + ["--demo", "--rank", "32"]) == 0
    cfg = seen.pop("cfg")
    assert cfg.rank == 32 and cfg.epochs == ft.DEMO_PRESET["epochs"]  # the preset never overrides a typed flag
    assert main(argv) == 0
    assert seen.pop("cfg").epochs is None and FinetuneConfig().head_epochs("summary") == 60  # SPEC §2 per head


def test_logs_keep_control_characters_of_generated_text(tmp_path):
    rows = [{"epoch": 1, "input": "로라야 안녕", "generated": "줄\r바꿈\x1c, \"따옴표\"\n끝 🫠"}]
    ft._write_csv(tmp_path / "log.csv", ft.VALID_LOG_COLUMNS, rows)
    assert _read(tmp_path / "log.csv") == [{k: str(v) for k, v in rows[0].items()}]


def test_demo_preset_is_a_set_of_config_overrides():
    cfg = FinetuneConfig(**ft.DEMO_PRESET)  # ohlora demo passes it exactly like this
    assert cfg.epochs is not None and cfg.rank < config.LoraConfig().rank and cfg.threads == 1


def test_torch_threads_is_restored():
    before = torch.get_num_threads()
    with ft.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


@pytest.mark.slow
def test_demo_settings_give_well_formed_heads_on_the_shipped_data(tmp_path):
    """The whole stand-in recipe (tiny base + DEMO_PRESET) on data/persona/ohlora.csv: the
    first unconstrained sample is mostly well-formed (~3 min on 2 cores)."""
    from pathlib import Path

    from peft import PeftModel

    from ohlora import formats
    from ohlora.heads.dataset import _get, head_inputs
    from ohlora.heads.tinybase import build_tiny_base
    from ohlora.models import load_causal_lm

    data = Path(__file__).resolve().parents[2] / "data" / "persona" / "ohlora.csv"
    base = build_tiny_base(data, tmp_path / "base", progress=False)
    finetune(FinetuneConfig(head="all", data=str(data), out=str(tmp_path / "heads"), base=str(base), **ft.DEMO_PRESET))
    rows = load_rows(data)
    model, tok = load_causal_lm(str(base), device="cpu")
    model = PeftModel.from_pretrained(model, tmp_path / "heads" / "memory", adapter_name="memory")
    model.load_adapter(str(tmp_path / "heads" / "output_message"), adapter_name="output_message")

    model.set_adapter("memory")
    memory = ft.generate_answers(model, tok, head_inputs(rows, "memory"), "memory", seed=0)
    assert sum(formats.parse_memory_output(a)[0] for a in memory) / len(memory) > 0.8
    # Not collapsed to the empty answer: where the valid row saves an item, the head
    # mostly saves one too (it once always answered empty: 0 items, yet 58% "correct").
    targets = [_get(r, "memory") for r in rows if _get(r, "data_type") == "valid"]  # memory reads every row
    saved = [formats.parse_memory_output(a)[1] is not None for a, t in zip(memory, targets) if t.strip()]
    assert saved and sum(saved) / len(saved) > 0.4
    model.set_adapter("output_message")
    replies = ft.generate_answers(model, tok, head_inputs(rows, "output_message"), "output_message", seed=0)
    assert sum(formats.reply_problem(r) is None for r in replies) / len(replies) > 0.7
    labels = sum(formats.parse_expression(r) is not None or formats.parse_memory(r) is not None for r in replies)
    assert labels / len(replies) < 0.15  # replies are prose, not another head's format


def test_epochs_per_head_overrides_epochs_for_the_heads_it_names():
    cfg = FinetuneConfig(epochs=6, epochs_per_head="memory=20, summary=3")
    assert [cfg.head_epochs(h) for h in config.HEADS] == [6, 20, 3, 6]
    spec = FinetuneConfig(epochs_per_head="memory=7")  # the others keep SPEC §2's
    assert [spec.head_epochs(h) for h in config.HEADS] == [60, 7, 60, 30]


@pytest.mark.parametrize("bad", ["memory", "memory=0", "memroy=20", "memory=two", "memory=-1"])
def test_malformed_epochs_per_head_is_a_clear_error_before_any_work(bad, tmp_path):
    with pytest.raises(OhloraError, match="epochs per head"):
        finetune(FinetuneConfig(head="memory", data=str(tmp_path / "missing.csv"), base="nowhere", epochs_per_head=bad))


def test_demo_preset_trains_the_memory_head_longer():
    # Six epochs left the stand-in memory head writing keys unrelated to the message.
    cfg = FinetuneConfig(**ft.DEMO_PRESET)
    assert cfg.head_epochs("memory") > cfg.head_epochs("output_message")
