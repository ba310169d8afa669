"""Segmentation: in the poll loop's thread and in real worker processes, exactly as the predictor
encodes, for each segmenter backend."""

import json
import subprocess
import sys

import pytest

from consumer.segmentation import InProcessSegmenter, PoolSegmenter
from model.artifact import load
from model.predictor import Predictor

TEXTS = [
    "这个手机很好用，电池也耐用！！！",
    "@小明 快递太慢了😭 http://t.cn/abc",
    "#双十一# 不推荐，质量差",
    "   ",
    "book 很一般 meh",
    "這家餐廳超級好吃[哈哈]，yyds",
]


@pytest.fixture(scope="module")
def predictor(model_name):
    return Predictor(load(model_name))


@pytest.mark.parametrize("processes", [1, 2])
def test_workers_encode_exactly_like_the_predictor(predictor, processes):
    pool = PoolSegmenter(predictor.loaded, processes)
    try:
        pool.warm_up()
        texts = TEXTS * 7  # 42 texts: uneven chunks across two workers
        beats = []
        encoded, seconds = pool.submit(texts).result(lambda: beats.append(1))
        # Same ids, kept tokens, token and OOV counts, same order.
        assert encoded == predictor.encode(texts)
        assert seconds > 0
        empty, _ = pool.submit([]).result()
        assert empty == []
    finally:
        pool.close()


def test_in_process_segmenter_encodes_like_the_predictor_when_asked(predictor):
    encoded, seconds = InProcessSegmenter(predictor.loaded).submit(TEXTS).result()
    assert encoded == predictor.encode(TEXTS)
    assert seconds > 0


def test_a_text_that_breaks_the_tokenizer_comes_back_as_its_error(predictor):
    for seg in (PoolSegmenter(predictor.loaded, 1), InProcessSegmenter(predictor.loaded)):
        try:
            encoded, _ = seg.submit(["很好", None, "太差"]).result()  # type: ignore[list-item]
        finally:
            seg.close()
        assert encoded[0] == predictor.encode(["很好"])[0]
        assert isinstance(encoded[1], str) and "Error" in encoded[1]
        assert encoded[2] == predictor.encode(["太差"])[0]


def test_workers_do_not_import_torch():
    """A worker imports only the segmentation side; torch would cost seconds and ~300 MB each."""
    code = (
        "import sys, json; import consumer.segment_worker; "
        "print(json.dumps('torch' in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) is False
