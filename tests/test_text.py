"""Normalisation and segmentation: the one text pipeline shared by training and serving."""

from model.text import TOPIC_TOKEN, URL_TOKEN, USER_TOKEN, Tokenizer, TokenizerConfig, normalize

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


def test_traditional_characters_and_mixed_english():
    tokens = tok.tokenize("這個產品很好，iPhone 15 Pro真的NICE")
    joined = "".join(tokens)
    assert "產品" in joined and "iphone" in joined and "nice" in joined
    assert " " not in tokens


def test_same_tokens_every_time():
    text = "客服态度差，等了三天都没发货！！@京东 http://x.cn/1"
    assert Tokenizer().tokenize(text) == tok.tokenize(text)
