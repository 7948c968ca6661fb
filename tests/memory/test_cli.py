"""`ohlora memory ...` end to end on the tiny klue-shaped RoBERTa: exit codes, one-line errors, nothing written on bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from ohlora.cli import main

COMBS = "\n".join(
    [
        "[오늘 날씨: 비] 우산 챙겨야 할까?",
        "[오늘 날씨: 맑음] 산책 갈까?",
        "[좋아하는 아이돌: 아이브] 신곡 들었어?",
        "[좋아하는 가수: 아이유] 요즘 무슨 노래 들어?",
        "[상태: 피곤함] 오늘 너무 힘들었어",
        "[상태: 배고픔] 배고파 😋",
        "[롤 티어: 골드] 승급전 이겼다!",
        "[취미: 등산] 주말에 산에 갈 거야",
    ]
)


@pytest.fixture
def combs(tmp_path):
    p = tmp_path / "combs.txt"
    p.write_text(COMBS + "\n", encoding="utf-8")
    return p


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("OHLORA_CACHE", str(tmp_path / "cache" / "emb.sqlite"))


def one_error_line(capsys, path_fragment: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("ohlora: error: ") and path_fragment in err, err
    assert "Traceback" not in err
    return err


def test_make_pairs_writes_reference_columns(combs, tmp_path, tiny_encoder_dir, capsys):
    out = tmp_path / "pairs.csv"
    assert main(["memory", "make-pairs", str(combs), "--out", str(out), "--teacher", tiny_encoder_dir]) == 0
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["memory_0", "user_prompt_0", "memory_1", "user_prompt_1", "similarity_score"]
    assert len(rows) == 1 + 64
    by = {(r[0], r[3]): float(r[4]) for r in rows[1:]}
    assert by["[좋아하는 가수: 아이브]", "요즘 무슨 노래 들어?"] == 1.0  # alias made the keys equal
    assert by["[오늘 날씨: 비]", "산책 갈까?"] == 1.0
    assert all(0.0 <= float(r[4]) <= 1.0 and len(r[4].split(".")[-1]) <= 4 for r in rows[1:])
    assert "64 pairs" in capsys.readouterr().out


def test_make_pairs_scores_from_a_pair_csv_needs_no_teacher(combs, tmp_path, capsys):
    """--scores-from without --teacher loads no model (a bogus default teacher would
    fail with exit 2): labels come from the table, unknown key pairs are dropped."""
    ref = tmp_path / "ref.csv"
    ref.write_text(
        "memory_0,user_prompt_0,memory_1,user_prompt_1,similarity_score\n"
        "[오늘 날씨: 눈],눈이다,[좋아하는 가수: 아이유],노래,0.4321\n",
        encoding="utf-8",
    )
    out = tmp_path / "pairs.csv"
    assert main(["memory", "make-pairs", str(combs), "--out", str(out), "--scores-from", str(ref)]) == 0
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))[1:]
    keys = {r[0].split(":")[0] for r in rows} | {r[2].split(":")[0] for r in rows}
    scores = {float(r[4]) for r in rows}
    assert scores <= {0.4321, 1.0} and 0.4321 in scores
    assert len(rows) < 64 and "left out" in capsys.readouterr().out
    assert all(float(r[4]) == 1.0 for r in rows if r[0].split(":")[0] == r[2].split(":")[0])
    assert keys  # something was written


@pytest.mark.parametrize(
    "content, where",
    [
        ("[오늘 날씨: 비] 우산\n[오늘 날씨: 비 우산\n", "bad.txt:2:"),
        ("[오늘 날씨: 비] 우산\n[: 비] 우산\n", "bad.txt:2:"),
        ("[오늘 날씨: ] 우산\n", "bad.txt:1:"),
        ("", "bad.txt: no combination lines"),
    ],
)
def test_make_pairs_bad_input(tmp_path, capsys, content, where):
    src = tmp_path / "bad.txt"
    src.write_text(content, encoding="utf-8")
    out = tmp_path / "pairs.csv"
    assert main(["memory", "make-pairs", str(src), "--out", str(out), "--teacher", "bundled"]) == 1
    one_error_line(capsys, where)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt"]


def test_make_pairs_non_utf8(tmp_path, capsys):
    src = tmp_path / "bad.txt"
    src.write_bytes("[오늘 날씨: 비] 우산\n".encode("euc-kr"))
    assert main(["memory", "make-pairs", str(src), "--out", str(tmp_path / "p.csv"), "--teacher", "bundled"]) == 1
    assert "UTF-8" in one_error_line(capsys, "bad.txt:1:")
    assert not (tmp_path / "p.csv").exists()


def test_make_pairs_existing_output_untouched_on_error(tmp_path, capsys):
    out = tmp_path / "pairs.csv"
    out.write_text("old\n", encoding="utf-8")
    src = tmp_path / "bad.txt"
    src.write_text("[오늘 날씨 비] 우산\n", encoding="utf-8")
    assert main(["memory", "make-pairs", str(src), "--out", str(out), "--teacher", "bundled"]) == 1
    assert out.read_text(encoding="utf-8") == "old\n"


def test_unloadable_teacher_is_one_line_exit_2(combs, tmp_path, capsys):
    out = tmp_path / "pairs.csv"
    assert main(["memory", "make-pairs", str(combs), "--out", str(out), "--teacher", str(tmp_path / "nope")]) == 2
    assert "--teacher" in one_error_line(capsys, "nope")
    assert not out.exists()


@pytest.mark.parametrize("command", ["train", "eval"])
def test_csv_missing_column(tmp_path, capsys, command, tiny_encoder_dir):
    bad = tmp_path / "pairs.csv"
    bad.write_text("memory_0,user_prompt_0,similarity_score\n[a: b],안녕,1.0\n", encoding="utf-8")
    model = tmp_path / "model"
    argv = ["memory", "train", str(bad), "--out", str(model), "--base", tiny_encoder_dir] if command == "train" else ["memory", "eval", tiny_encoder_dir, str(bad), "--out", str(model)]
    assert main(argv) == 1
    assert "user_prompt_1" in one_error_line(capsys, "pairs.csv:1:")
    assert not model.exists()


def test_train_eval_pick_end_to_end(combs, tmp_path, tiny_encoder_dir, capsys):
    pairs, model, report = tmp_path / "pairs.csv", tmp_path / "model", tmp_path / "report"
    assert main(["memory", "make-pairs", str(combs), "--out", str(pairs), "--teacher", tiny_encoder_dir]) == 0
    assert main(["memory", "train", str(pairs), "--out", str(model), "--base", tiny_encoder_dir, "--epochs", "2", "--lr", "1e-3"]) == 0
    assert (model / "modules.json").exists() and (model / "train_log.csv").exists()
    assert json.loads((model / "train_args.json").read_text())["mode"] == "block"
    assert main(["memory", "eval", str(model), str(pairs), "--out", str(report)]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics) == {"mse", "mae", "corr", "n"} and metrics["n"] == 64
    assert f"MSE {metrics['mse']:.4f}" in out
    with open(report / "test_result.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["memory", "user_prompt", "predicted_score", "ground_truth_score", "absolute_error"]
    assert len(rows) == 65
    assert (report / "scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def pairs(combs, tmp_path, tiny_encoder_dir, capsys):
    """The combinations' pair CSV, made by the CLI with the tiny encoder as teacher."""
    out = tmp_path / "pairs.csv"
    assert main(["memory", "make-pairs", str(combs), "--out", str(out), "--teacher", tiny_encoder_dir]) == 0
    capsys.readouterr()
    return out


def test_reference_mode_from_the_cli_draws_no_foreign_progress_bar(pairs, tmp_path, tiny_encoder_dir, capsys):
    # sentence-transformers' trainer computes model-card widget examples under its own tqdm bar
    model = tmp_path / "model"
    assert main(["memory", "train", str(pairs), "--out", str(model), "--base", tiny_encoder_dir, "--mode", "reference", "--epochs", "1"]) == 0
    err = capsys.readouterr().err
    assert json.loads((model / "train_args.json").read_text())["mode"] == "reference"
    assert "widget" not in err and "it/s" not in err and "example/s" not in err


def test_train_reads_several_pair_csvs_and_a_bad_second_one_stops_it(pairs, tmp_path, tiny_encoder_dir, capsys):
    model = tmp_path / "model"
    bad = tmp_path / "bad.csv"
    bad.write_text("memory_0,user_prompt_1,similarity_score\n[a: b],안녕,높음\n", encoding="utf-8")
    assert main(["memory", "train", str(pairs), str(bad), "--out", str(model), "--base", tiny_encoder_dir]) == 1
    one_error_line(capsys, "bad.csv:2:")
    assert not model.exists()
    # both files are read and trained on together; five-column rows select the lines view by default
    assert main(["memory", "train", str(pairs), str(pairs), "--out", str(model), "--base", tiny_encoder_dir, "--epochs", "1"]) == 0
    assert json.loads((model / "train_args.json").read_text())["views"] == "lines"


def _expected_scores(model_dir, items, prompt):
    from ohlora.models import load_sentence_encoder

    enc = load_sentence_encoder(model_dir)
    e = enc.encode(items + [prompt], convert_to_numpy=True)
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    return list(e[:-1] @ e[-1])


def test_pick_rules(tmp_path, tiny_encoder_dir, capsys):
    items = ["[오늘 날씨: 비]", "[좋아하는 가수: 아이유]", "[롤 티어: 골드]", "가 나"]
    mem = tmp_path / "memory.txt"
    mem.write_text("\n".join(items[:2]) + "\n\n" + "\n".join(items[2:]) + "\n", encoding="utf-8")
    prompt = "오늘 비 와?"
    scores = _expected_scores(tiny_encoder_dir, items, prompt)
    eligible = scores[:3]  # '가 나' is 2 characters without spaces: never picked
    best = int(np.argmax(eligible))

    assert main(["memory", "pick", tiny_encoder_dir, "--memory-file", str(mem), "--threshold", "-1", prompt]) == 0
    assert capsys.readouterr().out == items[best] + "\n"

    # just above the best score: nothing, exit 0
    t = f"{eligible[best] + 1e-3:.6f}"
    assert main(["memory", "pick", tiny_encoder_dir, "--memory-file", str(mem), "--threshold", t, prompt]) == 0
    assert capsys.readouterr().out == ""

    # just below: the best is picked (>= threshold)
    t = f"{eligible[best] - 1e-3:.6f}"
    assert main(["memory", "pick", tiny_encoder_dir, "--memory-file", str(mem), "--threshold", t, prompt]) == 0
    assert capsys.readouterr().out == items[best] + "\n"


def test_pick_short_items_only_prints_nothing(tmp_path, tiny_encoder_dir, capsys):
    mem = tmp_path / "memory.txt"
    mem.write_text("가\n나 다\n", encoding="utf-8")
    assert main(["memory", "pick", tiny_encoder_dir, "--memory-file", str(mem), "--threshold", "-1", "안녕"]) == 0
    assert capsys.readouterr().out == ""


def test_pick_verbose_lists_every_score(tmp_path, tiny_encoder_dir, capsys):
    items = ["[오늘 날씨: 비]", "[좋아하는 가수: 아이유]", "가"]
    mem = tmp_path / "memory.txt"
    mem.write_text("\n".join(items) + "\n", encoding="utf-8")
    scores = _expected_scores(tiny_encoder_dir, items, "노래 추천해줘")
    assert main(["memory", "pick", tiny_encoder_dir, "--memory-file", str(mem), "--threshold", "2", "--verbose", "노래 추천해줘"]) == 0
    cap = capsys.readouterr()
    assert cap.out == ""
    lines = cap.err.strip().splitlines()
    assert len(lines) == 3
    for line, item, s in zip(lines, items, scores):
        score, text = line.split("\t")
        assert text.startswith(item) and float(score) == pytest.approx(s, abs=1e-3)
    assert "never picked" in lines[2]


def test_pick_caches_item_embeddings(tmp_path, tiny_encoder_dir, capsys, monkeypatch):
    import sqlite3

    cache = tmp_path / "c.sqlite"
    monkeypatch.setenv("OHLORA_CACHE", str(cache))
    mem = tmp_path / "memory.txt"
    mem.write_text("[오늘 날씨: 비]\n[롤 티어: 골드]\n", encoding="utf-8")
    assert main(["memory", "pick", tiny_encoder_dir, "--memory-file", str(mem), "비 와?"]) == 0
    con = sqlite3.connect(cache)
    assert sorted(r[0] for r in con.execute("SELECT text FROM embedding")) == ["[롤 티어: 골드]", "[오늘 날씨: 비]"]
    con.close()


def test_pick_missing_memory_file(tmp_path, tiny_encoder_dir, capsys):
    assert main(["memory", "pick", tiny_encoder_dir, "--memory-file", str(tmp_path / "none.txt"), "안녕"]) == 1
    one_error_line(capsys, "none.txt: cannot read: file not found")


def test_train_with_kiwi_uses_its_own_lr_unless_one_is_given(combs, tmp_path, capsys):
    """The CLI leaves unset defaults to train(), so `--base kiwi` gets the encoder's lr
    (3e-3, not a transformer's 2e-5), and an explicit --lr still wins."""
    pairs = tmp_path / "pairs.csv"
    assert main(["memory", "make-pairs", str(combs), "--out", str(pairs), "--teacher", "kiwi"]) == 0
    for extra, lr in (([], 3e-3), (["--lr", "1e-4"], 1e-4)):
        out = tmp_path / f"kiwi{len(extra)}"
        assert main(["memory", "train", str(pairs), "--out", str(out), "--base", "kiwi", "--epochs", "1", *extra]) == 0
        assert json.loads((out / "train_args.json").read_text())["lr"] == pytest.approx(lr)
    assert "lr 0.0001" in capsys.readouterr().out
