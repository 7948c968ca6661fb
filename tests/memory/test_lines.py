"""`Lines` (training lines + a score per line pair) from pair rows and from combination
files, and training from them without the n² rows (`train(lines=...)`, `train --combs`)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ohlora.cli import main
from ohlora.errors import OhloraError
from ohlora.formats import parse_combination_line
from ohlora.memory.lines import Lines
from ohlora.memory.pairs import Combination, Pair, make_pairs

COMBS = [
    "[좋아하는 가수: 아이유] 로라야 노래 추천해 줘",
    "[좋아하는 아이돌: 로제] 요즘 들을 음악 뭐 있어? 🎵",  # alias: 좋아하는 가수
    "[오늘 날씨: 비] 우산 챙겨야 하나?",
    "[오늘 날씨: 맑음] 햇살 진짜 좋다 ☀️",
    "[상태: 콘서트 가고 싶음] 콘서트 티켓 예매하고 싶다",  # 상태: its value is the key
    "[상태: 뮤지컬 보고 싶음] 뮤지컬 보러 가고 싶어",
]
TABLE = {("좋아하는 가수", "오늘 날씨"): 0.1, ("콘서트 가고 싶음", "좋아하는 가수"): 0.7, ("오늘 날씨", "콘서트 가고 싶음"): 0.2,
         ("뮤지컬 보고 싶음", "콘서트 가고 싶음"): 0.8}  # 뮤지컬 vs 가수 / 날씨: unknown


def _combos(lines=COMBS) -> list[Combination]:
    return [Combination(*parse_combination_line(t), n) for n, t in enumerate(lines, start=1)]


def _rows(combos) -> list[Pair]:
    return [Pair(m0, p1, s, 0, p0, m1) for m0, p0, m1, p1, s in make_pairs(combos, None, table=TABLE)]


def test_from_rows_joins_the_two_halves_of_each_line():
    rows = [
        Pair("[a: 1]", "q2", 0.3, prompt_0="q1", memory_1="[b: 2]"),
        Pair("[b: 2]", "q1", 0.3, prompt_0="q2", memory_1="[a: 1]"),
        Pair("[a: 1]", "q3", 0.8, prompt_0="q1", memory_1="[c: 3]"),
    ]
    lines = Lines.from_rows(rows)
    assert lines.lines == [("[a: 1]", "q1"), ("[b: 2]", "q2"), ("[c: 3]", "q3")]
    assert lines.label(2, 0) == 0.8  # read either way round
    assert lines.label(1, 1) == 1.0  # a line's memory and prompt share the key
    assert lines.label(1, 2) is None  # never seen: not trained on


def test_combinations_give_the_labels_make_pairs_writes():
    combos = _combos()
    lines = Lines.from_combinations(combos, table=TABLE)
    want = {(m0, p0, m1, p1): s for m0, p0, m1, p1, s in make_pairs(combos, None, table=TABLE)}
    n = len(lines)
    for i in range(n):
        for j in range(n):
            (m0, p0), (m1, p1) = lines.lines[i], lines.lines[j]
            assert lines.label(i, j) == want.get((m0, p0, m1, p1)), (i, j)
    assert lines.label(0, 1) == 1.0  # 아이돌 -> 가수: equal keys
    assert lines.label(5, 0) is None  # 뮤지컬 vs 가수 is in no table and there is no teacher
    assert len(want) < n * n  # so the comparison above covered unknown pairs too


def test_the_teacher_scores_only_what_the_table_lacks(fake_encoder):
    x = (1.6 + 0.5) / 2.6  # teacher cosine that rescales to 0.5
    teacher = fake_encoder({"뮤지컬 보고 싶음": [1, 0, 0, 0], "좋아하는 가수": [x, math.sqrt(1 - x * x), 0, 0],
                            "오늘 날씨": [0, 0, 1, 0], "콘서트 가고 싶음": [1, 0, 0, 0]})
    lines = Lines.from_combinations(_combos(), teacher, table=TABLE)
    assert lines.label(5, 0) == 0.5  # from the teacher
    assert lines.label(4, 0) == 0.7  # from the table, though the teacher would say otherwise
    assert sorted(teacher.calls[0]) == ["뮤지컬 보고 싶음", "오늘 날씨", "좋아하는 가수"]  # the keys with unknown pairs, once


@pytest.mark.parametrize("build", ["rows", "combinations"])
def test_matrix_is_label_everywhere(build):
    combos = _combos()
    lines = Lines.from_rows(_rows(combos)) if build == "rows" else Lines.from_combinations(combos, table=TABLE)
    m = lines.matrix()
    for i in range(len(lines)):
        for j in range(len(lines)):
            lab = lines.label(i, j)
            assert (np.isnan(m[i, j]) if lab is None else m[i, j] == pytest.approx(lab)), (i, j)


def test_a_repeated_line_counts_once():
    lines = Lines.from_combinations(_combos(COMBS + COMBS[:2]), table=TABLE)
    assert len(lines) == len(COMBS)


def test_weights_follow_their_lines_through_repeats_subsets_and_splits():
    combos = _combos(COMBS + COMBS[:1])  # line 0 again, heavier
    lines = Lines.from_combinations(combos, table=TABLE, weights=[1, 2, 3, 4, 5, 6, 9])
    assert lines.weights == [9, 2, 3, 4, 5, 6]  # a line given twice keeps the larger weight
    assert Lines.from_combinations(combos, table=TABLE).weights is None  # unweighted: 1 each, as before
    assert lines.subset([4, 1]).weights == [5, 2]
    kept, _ = lines.split(0.34, seed=0)
    assert [lines.weights[lines.lines.index(ln)] for ln in kept.lines] == kept.weights
    with pytest.raises(OhloraError, match="7 combination lines"):
        Lines.from_combinations(combos, table=TABLE, weights=[1, 2])


@pytest.mark.parametrize("build", ["rows", "combinations"])
def test_split_holds_out_whole_lines(build):
    combos = _combos(COMBS * 1 + [f"[오늘 날씨: 눈] 눈 온다 {i}" for i in range(14)])
    table = TABLE
    lines = Lines.from_rows(_rows(combos)) if build == "rows" else Lines.from_combinations(combos, table=table)
    kept, valid = lines.split(0.25, seed=3)
    held = set(lines.lines) - set(kept.lines)
    assert len(held) == 5 and len(kept) == len(lines) - 5
    for r in valid:  # every validation pair joins two held-out lines, with their label
        a, b = (r.memory, r.prompt_0), (r.memory_1, r.prompt)
        assert a in held and b in held
        assert r.score == lines.label(lines.lines.index(a), lines.lines.index(b))
    for i in range(len(kept)):  # the kept lines keep their labels
        for j in range(len(kept)):
            assert kept.label(i, j) == lines.label(lines.lines.index(kept.lines[i]), lines.lines.index(kept.lines[j]))
    assert lines.split(0.25, seed=3)[0].lines == kept.lines  # seeded


def test_topic_fitted_from_combinations_equals_topic_fitted_from_their_rows():
    """The same lines and labels, without the n² rows: the same encoder, to the float."""
    from ohlora.memory.train import TrainArgs, train

    combos = _combos()
    args = TrainArgs(valid_ratio=0.0)
    a = train(None, None, base="topic", args=args, pairs=_rows(combos), progress=False).model
    b = train(None, None, base="topic", args=args, lines=Lines.from_combinations(combos, table=TABLE), progress=False).model
    texts = ["[좋아하는 가수: 태연]", "노래 듣고 싶어", "비 온다 ☔"]
    assert np.allclose(a.encode(texts), b.encode(texts), atol=1e-6)


def test_lines_refuse_the_pair_view_and_reference_mode():
    from ohlora.memory.train import TrainArgs, train

    lines = Lines.from_combinations(_combos(), table=TABLE)
    for args in (TrainArgs(views="pair"), TrainArgs(mode="reference")):
        with pytest.raises(OhloraError, match="make-pairs"):
            train(None, None, base="topic", args=args, lines=lines, progress=False)


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


def test_cli_train_combs_from_a_score_table(tmp_path, capsys):
    combs = _write(tmp_path, "combs.txt", "\n".join(COMBS * 3) + "\n")
    ref = _write(tmp_path, "ref.csv", "memory_0,user_prompt_0,memory_1,user_prompt_1,similarity_score\n" + "".join(
        f"[{a}: x],p,[{b}: y],q,{s}\n" for (a, b), s in TABLE.items()))
    out = tmp_path / "topic"
    assert main(["memory", "train", "--combs", combs, "--scores-from", ref, "--base", "topic", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "fitted topic encoder" in said and "6 lines" in said  # the repeats count once
    assert (out / "topic_config.json").exists()


def test_cli_teacher_flags_need_combs(tmp_path, capsys):
    pairs = _write(tmp_path, "p.csv", "memory_0,user_prompt_0,memory_1,user_prompt_1,similarity_score\n[a: 1],q,[a: 1],q,1.0\n")
    assert main(["memory", "train", pairs, "--scores-from", pairs, "--base", "topic", "--out", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert "--combs" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_cli_combs_with_bad_lines_names_file_and_line(tmp_path, capsys):
    combs = _write(tmp_path, "bad.txt", "[오늘 날씨: 비] 우산\n[오늘 날씨 비 우산\n")
    assert main(["memory", "train", "--combs", combs, "--scores-from", combs, "--base", "topic", "--out", str(tmp_path / "m")]) != 0
    assert "bad.txt:2" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_the_table_wins_in_either_order_even_where_the_teacher_is_asked(fake_encoder):
    """Keys a and b are both sent to the teacher (each has an unscored pair with c), and
    the table holds only (b, a): its score must still win for (a, b), as in make_pairs."""
    combos = _combos(["[오늘 날씨: 비] 우산", "[좋아하는 가수: 아이유] 노래", "[롤 티어: 골드] 게임"])
    table = {("좋아하는 가수", "오늘 날씨"): 0.42}
    teacher = fake_encoder({"오늘 날씨": [1, 0, 0, 0], "좋아하는 가수": [1, 0, 0, 0], "롤 티어": [0, 1, 0, 0]})
    lines = Lines.from_combinations(combos, teacher, table=table)
    assert lines.label(0, 1) == lines.label(1, 0) == 0.42  # the teacher would say 1.0
    rows = {(r[0], r[2]): r[4] for r in make_pairs(combos, teacher, table=table)}
    assert rows["[오늘 날씨: 비]", "[좋아하는 가수: 아이유]"] == 0.42
    assert lines.label(0, 2) == rows["[오늘 날씨: 비]", "[롤 티어: 골드]"] == 0.0  # from the teacher


def test_cli_combs_whose_key_pairs_no_table_scores(tmp_path, capsys):
    combs = _write(tmp_path, "combs.txt", "\n".join(COMBS) + "\n")
    ref = _write(tmp_path, "ref.csv", "memory_0,user_prompt_0,memory_1,user_prompt_1,similarity_score\n[롤 티어: 골드],p,[날씨: 눈],q,0.3\n")
    assert main(["memory", "train", "--combs", combs, "--scores-from", ref, "--base", "topic", "--out", str(tmp_path / "m")]) == 1
    assert "add --teacher" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def _ref_csv(tmp_path):
    return _write(tmp_path, "ref.csv", "memory_0,user_prompt_0,memory_1,user_prompt_1,similarity_score\n" + "".join(
        f"[{a}: x],p,[{b}: y],q,{s}\n" for (a, b), s in TABLE.items()))


def test_cli_line_weights_weigh_each_file_and_change_the_fit(tmp_path, capsys, monkeypatch):
    """One weight per input file reaches the topic fit as each of the file's lines' weight."""
    import ohlora.memory.topic_encoder as te

    seen = []
    real = te.TopicEncoder.fit_lines

    def recording(self, data, seed=0):
        seen.append(data.weights)
        return real(self, data, seed)

    monkeypatch.setattr(te.TopicEncoder, "fit_lines", recording)
    a = _write(tmp_path, "a.txt", "\n".join(COMBS[:4]) + "\n")
    b = _write(tmp_path, "b.txt", "\n".join(COMBS[4:]) + "\n")
    ref = _ref_csv(tmp_path)
    base = ["memory", "train", "--combs", a, b, "--scores-from", ref, "--base", "topic"]
    assert main(base + ["--line-weights", "3,0.5", "--out", str(tmp_path / "w")]) == 0
    assert main(base + ["--out", str(tmp_path / "u")]) == 0
    assert seen[0] == [3.0] * 4 + [0.5] * 2 and seen[1] is None
    texts = ["[상태: 콘서트 가고 싶음]", "우산 챙겨야 하나?", "노래 추천해 줘"]
    from ohlora.models import load_sentence_encoder

    weighted, plain = (load_sentence_encoder(str(tmp_path / d)).encode(texts) for d in ("w", "u"))
    assert not np.allclose(weighted, plain, atol=1e-4)


@pytest.mark.parametrize("flags, says", [
    (["--line-weights", "1"], "1 weights for 2 input files"),
    (["--line-weights", "1,0"], "positive"),
    (["--line-weights", "1,x"], "numbers separated by commas"),
    (["--line-weights", "1,1", "--base", "kiwi"], "--base topic"),
])
def test_cli_bad_line_weights_say_what_to_change(tmp_path, capsys, flags, says):
    a = _write(tmp_path, "a.txt", "\n".join(COMBS[:4]) + "\n")
    b = _write(tmp_path, "b.txt", "\n".join(COMBS[4:]) + "\n")
    args = ["memory", "train", "--combs", a, b, "--scores-from", _ref_csv(tmp_path), "--out", str(tmp_path / "m")]
    if "--base" not in flags:
        args += ["--base", "topic"]
    assert main(args + flags) == 1
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_cli_line_weights_need_combs(tmp_path, capsys):
    pairs = _write(tmp_path, "p.csv", "memory_0,user_prompt_0,memory_1,user_prompt_1,similarity_score\n[a: 1],q,[b: 1],r,0.5\n")
    assert main(["memory", "train", pairs, "--line-weights", "2", "--base", "topic", "--out", str(tmp_path / "m")]) == 1
    assert "--combs" in capsys.readouterr().err
