"""Sentiment knowledge: the lexicon's cues, how the builder merges its sources, and the token
tables a knowledge model carries."""

from __future__ import annotations

import zipfile

import yaml

from model import lexicon_cues
from model.vocab import Vocab
from training.features import char_table, cue_table
from training.knowledge import build


def test_cues_of_everyday_words_emoji_and_emoticons():
    cue = lambda w: lexicon_cues.CUES[lexicon_cues.cue(w)]  # noqa: E731
    assert cue("好吃") == cue("满意") == "positive"
    assert cue("失望") == cue("垃圾") == "negative"
    assert cue("不") == cue("没有") == "negation"
    assert cue("非常") == cue("太") == "degree"
    assert cue("😍") == cue("[哈哈]") == "emoji_positive"
    assert cue("[怒]") == "emoji_negative"
    assert cue("手机") == "none"


def _wheel(path, files: dict[str, str]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)


def test_the_builder_joins_sources_and_drops_words_of_both_polarities(tmp_path):
    d = "cntext/io/data/"
    hownet = {"Dictionary": {"pos": ["棒", "两可"], "neg": ["差", "两可"], "deny": ["不"],
                             "very": ["很", "好"], "more": ["更"], "ish": ["有点"]}}  # fmt: skip
    ntusd = {"Dictionary": {"positive": ["赞"], "negative": ["烂"]}}
    dutir = {"Dictionary": {"乐": ["开心"], "好": ["美"], "怒": ["气"], "哀": ["哭"], "恶": ["丑"],
                            "惧": ["怕"], "惊": ["呀"]}}  # fmt: skip
    _wheel(tmp_path / "c.whl", {d + "zh_common_HowNet.yaml": yaml.safe_dump(hownet),
                                d + "zh_common_NTUSD.yaml": yaml.safe_dump(ntusd),
                                d + "zh_common_DUTIR.yaml": yaml.safe_dump(dutir)})  # fmt: skip
    csv = (
        "Emoji,Unicode codepoint,Occurrences,Position,Negative,Neutral,Positive,Unicode name,"
        "Unicode block\n😀,0,100,0,5,20,75,a,b\n😡,0,100,0,60,20,20,a,b\n🙂,0,10,0,0,0,10,a,b\n"
    )
    _wheel(tmp_path / "e.whl", {"emosent/data/Emoji_Sentiment_Data_v1.0.csv": csv})
    lex = build(tmp_path / "c.whl", tmp_path / "e.whl")
    assert {"棒", "赞", "开心", "美", "好"} <= set(lex["positive"])
    assert {"差", "烂", "气", "哭", "丑", "怕"} <= set(lex["negative"])
    assert "两可" not in lex["positive"] + lex["negative"]  # listed both ways: dropped
    assert "呀" not in lex["positive"] + lex["negative"]  # surprise has no polarity
    assert "好" not in lex["degree"] and {"很", "更", "有点"} <= set(lex["degree"])
    assert "😀" in lex["emoji_positive"] and "😡" in lex["emoji_negative"]
    assert "🙂" not in lex["emoji_positive"]  # too few occurrences to trust


def test_token_tables_spell_each_token_and_give_its_cue():
    vocab = Vocab(["<pad>", "<unk>", "<url>", "好吃", "不", "绝绝子", "[怒]"])
    n_chars, chars = char_table(vocab, 4)
    assert n_chars == len(set("好吃不绝子[怒]")) + 1
    assert chars[0].tolist() == chars[2].tolist() == [0, 0, 0, 0]  # padding and placeholders
    assert (chars[5, :3] > 0).all() and chars[5, 0] == chars[5, 1] and chars[5, 3] == 0
    cues = cue_table(vocab).tolist()
    assert [lexicon_cues.CUES[c] for c in cues[3:]] == ["positive", "negation", "none",
                                                       "emoji_negative"]  # fmt: skip


def test_unseen_words_are_spelled_out_in_characters():
    vocab = Vocab(["<pad>", "<unk>", "绝", "子", "好"], char_fallback=True)
    ids, kept, oov = vocab.lookup(["绝绝子", "好", "炸"], 10)
    assert kept == ["绝", "绝", "子", "好", "炸"] and ids == [2, 2, 3, 4, 1] and oov == 2
    assert Vocab(vocab.itos).lookup(["绝绝子"], 10) == ([1], ["绝绝子"], 1)  # legacy: one <unk>
    assert vocab.lookup(["绝绝子", "好"], 2)[0] == [2, 2]  # max_len counts ids
