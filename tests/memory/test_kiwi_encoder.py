"""The `kiwi` memory encoder: Kiwi's morpheme vectors recovered from its cosines, the
Sentence-Transformers module over them, save/load, and training through the same loop
as every other encoder."""

from __future__ import annotations

import json
import unicodedata

import numpy as np
import pytest

from ohlora.errors import ModelLoadError
from ohlora.memory.morphemes import KEY, PROMPT, VALUE, MorphemeVectors, load_kiwi


@pytest.fixture(scope="session")
def vectors() -> MorphemeVectors:
    return MorphemeVectors()  # builds the basis once a session (~3 s)


@pytest.fixture(scope="session")
def kiwi_model():
    from ohlora.models import load_sentence_encoder

    return load_sentence_encoder("kiwi")


def _id(kiwi, form: str, tag: str) -> int:
    return next(t.id for t in kiwi.tokenize(form) if t.form == form and t.tag == tag)


def test_recovered_vectors_reproduce_kiwis_own_cosines(vectors):
    kiwi = load_kiwi()
    rng = np.random.default_rng(7)
    ids = [int(i) for i in rng.choice(vectors.basis.n_vocab, size=60, replace=False)]
    # Undo the centring to compare with Kiwi's raw cosines.
    f = np.array([[kiwi.morpheme_similarity(i, int(a)) for a in vectors.basis.anchors] for i in ids])
    raw = f @ vectors.basis.proj.T
    raw /= np.linalg.norm(raw, axis=1, keepdims=True)
    ours = raw @ raw.T
    theirs = np.array([[kiwi.morpheme_similarity(i, j) for j in ids] for i in ids])
    assert np.abs(ours - theirs).max() < 2e-3


def test_vectors_carry_korean_meaning(vectors):
    kiwi = load_kiwi()
    song, music, weather = (_id(kiwi, w, "NNG") for w in ("노래", "음악", "날씨"))
    v = vectors.vectors([song, music, weather])
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2  # 노래 is nearer 음악 than 날씨


def test_tokens_mark_key_value_and_prompt_parts(vectors):
    toks = vectors.tokens("[좋아하는 가수: 아이유]")
    parts = {t.form: t.part for t in toks}
    assert parts["가수"] == KEY and parts["아이유"] == VALUE
    assert all(t.part == PROMPT for t in vectors.tokens("노래 추천해 줘"))
    # particles and endings are left out; content morphemes stay
    forms = [t.form for t in vectors.tokens("로라야 노래 추천해 줘")]
    assert "노래" in forms and "야" not in forms


def test_decomposed_and_zero_width_text_embeds_like_composed(kiwi_model):
    text = "오늘 날씨 진짜 좋다 😀"
    messy = unicodedata.normalize("NFD", "오늘 날\u200b씨 진짜  좋다 😀")
    a, b = kiwi_model.encode([text, messy], normalize_embeddings=True)
    assert float(a @ b) == pytest.approx(1.0, abs=1e-6)


def test_text_without_morphemes_encodes_to_zero_not_nan(kiwi_model):
    z = kiwi_model.encode(["", "   "], convert_to_numpy=True)
    assert np.isfinite(z).all() and np.abs(z).max() == 0.0


def test_save_and_load_round_trip(kiwi_model, tmp_path):
    from ohlora.models import load_sentence_encoder

    kiwi_model.save(str(tmp_path))
    assert json.loads((tmp_path / "modules.json").read_text())[0]["type"] == "ohlora.memory.kiwi_encoder.KiwiEncoder"
    texts = ["[오늘 일정: 면접] 아 떨린다", "로라야 노래 추천해 줘~", "ㅋㅋㅋ 🍕"]
    again = load_sentence_encoder(str(tmp_path), flag="MODEL_DIR")
    # same vectors up to float32 rounding (a morpheme's vector is computed in whatever batch first needs it)
    assert np.allclose(again.encode(texts), kiwi_model.encode(texts), atol=1e-5)


@pytest.mark.parametrize("type_", ["os.system", "ohlora.engine.demo.shutil"])
def test_loading_a_folder_naming_another_class_is_not_ours(tmp_path, type_):
    """Only ohlora's two encoder classes are built without trust_remote_code; a folder
    naming anything else (even a name inside the ohlora package) goes the normal way and
    fails as one line."""
    from ohlora.models import load_sentence_encoder

    (tmp_path / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": type_}]))
    with pytest.raises(ModelLoadError, match="MODEL_DIR"):
        load_sentence_encoder(str(tmp_path), flag="MODEL_DIR")


def test_training_the_kiwi_head_fits_and_generalises_to_an_unseen_prompt(tmp_path):
    """Train on pairs built from six lines; unseen prompts must then sit nearest the memory
    of their own key."""
    from ohlora.memory.pairs import Pair
    from ohlora.memory.train import TrainArgs, train

    lines = [
        ("[좋아하는 가수: 아이유]", "로라야 노래 추천해 줘"),
        ("[좋아하는 가수: 로제]", "요즘 들을 음악 뭐 있어?"),
        ("[오늘 날씨: 비]", "우산 챙겨야 하나?"),
        ("[오늘 날씨: 맑음]", "햇살 진짜 좋다"),
        ("[내일 일정: 면접]", "자기소개 연습 좀 도와줘"),
        ("[내일 일정: 시험]", "공부 하나도 안 했어"),
    ]
    key = lambda m: m.split(":")[0]  # noqa: E731
    pairs = [
        Pair(m0, p1, 1.0 if key(m0) == key(m1) else 0.0, 0, p0, m1)
        for m0, p0 in lines
        for m1, p1 in lines
    ]
    result = train(None, tmp_path / "enc", base="kiwi", args=TrainArgs(epochs=30, batch_size=16, valid_ratio=0.0), pairs=pairs, progress=False)
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < losses[0] * 0.5
    args = json.loads((tmp_path / "enc" / "train_args.json").read_text())
    assert args["lr"] == pytest.approx(3e-3)  # the encoder's own default, as none was given
    # new values, and prompts whose words never occur in training (곡, 멜로디, 떨려서 ...)
    memories = ["[좋아하는 가수: 태연]", "[오늘 날씨: 흐림]", "[내일 일정: 발표]"]
    prompts = ["새로 나온 곡 멜로디 좋더라", "비 올 것 같은데 우산 있나", "내일 떨려서 잠이 안 와"]
    z = result.model.encode(memories + prompts, normalize_embeddings=True)
    cos = z[3:] @ z[:3].T
    assert list(cos.argmax(axis=1)) == [0, 1, 2]
    assert cos.diagonal().min() > 0.4


def test_unknown_model_name_still_names_the_flag():
    from ohlora.models import load_sentence_encoder

    with pytest.raises(ModelLoadError, match="--base"):
        load_sentence_encoder("./no-such-folder", flag="--base")


def test_cache_id_changes_with_the_basis_not_only_the_weights(kiwi_model, tmp_path):
    """Two kiwi encoders with equal weights but another morpheme basis (another Kiwi model)
    must not share cached item vectors."""
    from ohlora.memory.morphemes import Basis
    from ohlora.memory.retrieval import encoder_id
    from ohlora.models import load_sentence_encoder

    kiwi_model.save(str(tmp_path / "a"))
    a = load_sentence_encoder(str(tmp_path / "a"), flag="MODEL_DIR")
    assert encoder_id(a) == encoder_id(load_sentence_encoder(str(tmp_path / "a"), flag="MODEL_DIR"))
    b = load_sentence_encoder(str(tmp_path / "a"), flag="MODEL_DIR")
    arrays = b[0].vectors.basis.arrays()
    arrays["proj"] = arrays["proj"] * -1.0  # the same vectors up to sign: a different basis
    b[0].vectors.basis = Basis.from_arrays(arrays)
    assert encoder_id(b) != encoder_id(a)
