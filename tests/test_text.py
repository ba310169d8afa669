"""Normalisation and segmentation: the one text pipeline shared by training and serving."""

import pytest

from model.segmenters import WORD_SEGMENTERS
from model.text import (
    TOPIC_TOKEN,
    URL_TOKEN,
    USER_TOKEN,
    Tokenizer,
    TokenizerConfig,
    normalize,
    read_user_words,
)

tok = Tokenizer()


def test_negation_words_are_kept():
    for text, neg in [
        ("我不喜欢这个手机", "不"),
        ("没意思", "没"),
        ("别买", "别"),
        ("一点也不好", "不"),
    ]:
        tokens = tok.tokenize(text)
        assert any(neg in t for t in tokens), (text, tokens)
    assert "".join(tok.tokenize("我不喜欢这个手机")) == "我不喜欢这个手机"


def test_full_width_becomes_half_width():
    assert normalize("ＡＢＣ１２３！") == "abc123!"


def test_urls_mentions_topics_become_placeholders():
    tokens = tok.tokenize("@小明_2024 看这个 https://t.cn/A6x9?z=1 #今日话题# 太棒了")
    assert tokens.count(URL_TOKEN) == 1
    assert tokens.count(USER_TOKEN) == 1
    assert tokens.count(TOPIC_TOKEN) == 1
    assert "太棒了" in "".join(tokens)
    assert not any("http" in t or "t.cn" in t for t in tokens)


def test_repeated_punctuation_is_squeezed():
    assert normalize("好！！！！！") == "好!"
    assert normalize("真的吗？？？。。。") == "真的吗?。"


def test_emoji_are_single_tokens():
    tokens = tok.tokenize("太好吃了😍😍👍")
    assert tokens[-3:] == ["😍", "😍", "👍"]


def test_empty_and_whitespace_only():
    assert tok.tokenize("") == []
    assert tok.tokenize("   \n\t　") == []


def test_very_long_text_is_cut_before_segmentation():
    short = Tokenizer(TokenizerConfig(max_chars=50))
    tokens = short.tokenize("好" * 100_000)
    assert 0 < len("".join(tokens)) <= 50


def test_traditional_characters_become_simplified_and_english_stays_whole():
    tokens = tok.tokenize("這個產品很好，iPhone 15 Pro真的NICE")
    assert "产品" in tokens and "iphone" in tokens and "nice" in tokens
    assert " " not in tokens
    assert tok.tokenize("這家餐廳超級好吃") == tok.tokenize("这家餐厅超级好吃")
    legacy = Tokenizer(TokenizerConfig.from_dict({}))
    assert "產品" in "".join(legacy.tokenize("這個產品很好"))


def test_weibo_emoticons_are_tokens_of_their_own():
    assert tok.tokenize("[怒][怒][怒]") == ["[怒]", "[怒]", "[怒]"]
    assert tok.tokenize("笑死我了[哈哈][doge]")[-2:] == ["[哈哈]", "[doge]"]
    legacy = Tokenizer(TokenizerConfig.from_dict({}))
    assert "[怒]" not in legacy.tokenize("[怒][怒]")


@pytest.mark.parametrize("backend", WORD_SEGMENTERS)
def test_user_words_stay_whole_and_stay_in_their_own_tokenizer(backend):
    text = "这个蚌埠住了真的下头"
    plain = Tokenizer(TokenizerConfig(segmenter=backend))
    custom = Tokenizer(TokenizerConfig(segmenter=backend, user_words=("蚌埠住了", "下头")))
    assert "蚌埠住了" in custom.tokenize(text) and "下头" in custom.tokenize(text)
    assert "蚌埠住了" not in plain.tokenize(text)  # another model's dictionary is untouched
    assert "蚌埠住了" not in Tokenizer(TokenizerConfig(segmenter=backend)).tokenize(text)


def test_a_config_saved_before_a_setting_existed_keeps_the_old_behaviour():
    old = TokenizerConfig.from_dict({"max_chars": 1000, "hmm": True})
    assert (old.segmenter, old.t2s, old.emoticons, old.user_words) == ("jieba", False, False, ())
    new = TokenizerConfig()
    assert new.segmenter == "rjieba" and new.t2s and new.emoticons
    assert TokenizerConfig.from_dict(new.to_dict()) == new
    with pytest.raises(ValueError, match="segmenter"):
        TokenizerConfig(segmenter="thulac")
    with pytest.raises(ValueError, match="unknown tokenizer config keys"):
        TokenizerConfig.from_dict({"stemming": True})


def test_user_dictionary_file(tmp_path):
    f = tmp_path / "words.txt"
    f.write_text("# slang\nyyds\n\n绝绝子 100 a\nyyds\n", encoding="utf-8")
    assert read_user_words(str(f)) == ("yyds", "绝绝子")


def test_same_tokens_every_time():
    text = "客服态度差，等了三天都没发货！！@京东 http://x.cn/1"
    assert Tokenizer().tokenize(text) == tok.tokenize(text)


def test_chars_without_normalisation_read_the_text_as_written():
    raw = TokenizerConfig(segmenter="chars", t2s=False, emoticons=False, normalize=False)
    assert Tokenizer(raw).tokenize(" 國 家！Ａ\u3000<url> 😂") == [
        "國", "家", "！", "Ａ", "<", "u", "r", "l", ">", "😂",
    ]  # fmt: skip
    assert TokenizerConfig.from_dict(raw.to_dict()) == raw
    assert TokenizerConfig.from_dict({}).normalize  # older artifacts normalised
    with pytest.raises(ValueError, match="word segmenter"):
        TokenizerConfig(segmenter="chars", user_words=("蚌埠住了",))
    with pytest.raises(ValueError, match="t2s"):
        TokenizerConfig(t2s=True, normalize=False)
