"""The segmentation pool: real worker processes encode exactly as the predictor does."""

import json
import subprocess
import sys

import pytest

from consumer.tokenizer_pool import TokenizerPool
from model.artifact import load
from model.predictor import Predictor

TEXTS = [
    "这个手机很好用，电池也耐用！！！",
    "@小明 快递太慢了😭 http://t.cn/abc",
    "#双十一# 不推荐，质量差",
    "   ",
    "book 很一般 meh",
]


@pytest.fixture(scope="module")
def predictor(model_name):
    return Predictor(load(model_name))


@pytest.mark.parametrize("processes", [1, 2])
def test_workers_encode_exactly_like_the_predictor(predictor, processes):
    pool = TokenizerPool(predictor.loaded, processes)
    try:
        pool.warm_up()
        texts = TEXTS * 7  # 35 texts: uneven chunks across two workers
        batch = pool.submit(texts)
        assert batch.wait(60)
        encoded, seconds = batch.result()
        assert encoded == predictor.encode(texts)  # same ids, token and OOV counts, same order
        assert seconds > 0
        empty, _ = pool.submit([]).result(60)
        assert empty == []
    finally:
        pool.close()


def test_a_text_that_breaks_the_tokenizer_comes_back_as_its_error(predictor):
    pool = TokenizerPool(predictor.loaded, 1)
    try:
        encoded, _ = pool.submit(["很好", None, "太差"]).result(60)  # type: ignore[list-item]
    finally:
        pool.close()
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
