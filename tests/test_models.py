"""Model names -> loaded models, and the one-line error when a model can't be had."""

import pytest

from ohlora import models
from ohlora.cli import main
from ohlora.errors import ModelLoadError


def test_bundled_encoder_embeds_korean_offline():
    enc = models.load_sentence_encoder("bundled")
    a, b, c = enc.encode(["오늘 날씨 어때?", "오늘 날씨 어때?", "롤 티어 올랐어"], normalize_embeddings=True)
    assert a.shape == (384,)
    assert float(a @ b) == pytest.approx(1.0, abs=1e-5)
    assert float(a @ c) < 0.999


@pytest.mark.parametrize(("folder", "arch"), [("tiny_encoder_dir", "RobertaModel"), ("tiny_bert_dir", "BertModel")])
def test_plain_encoder_folder_gets_mean_pooling(request, folder, arch):
    # klue/roberta-base is saved with its masked-LM head: the encoder must load without it
    enc = models.load_sentence_encoder(request.getfixturevalue(folder))
    names = [type(m).__name__ for m in enc]
    assert names[-1] == "Pooling" and enc[-1].get_config_dict()["pooling_mode"] == "mean"
    assert type(enc[0].auto_model).__name__ == arch
    assert enc.max_seq_length == 64  # SPEC §4: max 64 tokens
    alone, batched = enc.encode(["안녕 😀"]), enc.encode(["안녕 😀", "로라야 오늘 날씨 어때? 비 오면 우산 챙겨야지 " * 3])
    assert alone.shape == (1, 64)
    assert batched[0] == pytest.approx(alone[0], abs=1e-5)  # padding beside a long text changes nothing


def test_causal_lm_folder_loads_with_pad_token(tiny_lm_dir):
    model, tok = models.load_causal_lm(tiny_lm_dir)
    assert type(model).__name__ == "GPTNeoXForCausalLM"
    assert tok.pad_token == "<|endoftext|>"


def test_unreachable_hub_id_names_model_and_flag(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    models.hub_reachable.cache_clear()
    with pytest.raises(ModelLoadError) as e:
        models.resolve("someone/not-cached-model", "--teacher", bundled_ok=True)
    msg = str(e.value)
    assert "someone/not-cached-model" in msg and "--teacher" in msg and "bundled" in msg
    assert "\n" not in msg


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        models.resolve(str(tmp_path / "nope"), "--base")
    with pytest.raises(ModelLoadError, match="empty"):
        models.resolve(str(tmp_path), "--base")


def test_folder_that_is_not_a_model_gives_one_line(tmp_path):
    (tmp_path / "junk.txt").write_text("not a model", encoding="utf-8")
    with pytest.raises(ModelLoadError) as e:
        models.load_causal_lm(str(tmp_path), flag="--base")
    assert str(tmp_path) in str(e.value) and "--base" in str(e.value)


def test_cli_turns_user_errors_into_one_line_and_exit_code(capsys, monkeypatch):
    import argparse

    from ohlora import cli

    def boom(args):
        models.resolve("/definitely/not/here", "--models")

    real_build = cli.build_parser

    def build():
        p = real_build()
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        sub.add_parser("boom").set_defaults(func=boom)
        return p

    monkeypatch.setattr(cli, "build_parser", build)
    assert main(["boom"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ohlora: error: ") and err.count("\n") == 1 and "--models" in err
