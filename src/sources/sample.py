"""The built-in synthetic sample: deterministic records in the dolly-15k-ja schema, each instruction marked
SYNTHETIC_MARK. SplitMix64 makes the bytes independent of `random`, the hash seed and the platform (dvc.lock pins them).
"""
from __future__ import annotations

from collections.abc import Iterator

from src.core.schema import CATEGORIES
from src.core.splitmix import SplitMix64

SYNTHETIC_MARK = "【合成サンプル】"

# Shaped like the real dataset: open_qa is the most common category, creative_writing the rarest.
_CATEGORY_WEIGHTS = (3611, 2191, 2136, 1823, 1768, 1512, 1263, 711)
# Categories whose records carry an input passage, as in the real data.
_WITH_INPUT = frozenset({"closed_qa", "information_extraction", "summarization"})

_TOPICS = ("富士山", "江戸時代の商人", "量子コンピュータ", "日本茶", "桜前線", "新幹線", "俳句", "深海の生き物",
           "地方の祭り", "太陽光発電", "将棋", "和紙づくり", "火山の噴火", "囲碁", "古い城下町", "渡り鳥",
           "発酵食品", "宇宙望遠鏡", "棚田", "路面電車", "民謡", "温泉地", "気候変動", "図書館の歴史")
_SUBJECTS = ("この地域では", "多くの研究者は", "昔の人々は", "最近の調査によると", "専門家の間では", "子どもたちは",
             "旅行者にとって", "歴史的に見ると", "一般的に", "ある記録では")
_PREDICATES = ("長い時間をかけて発展してきた。", "季節ごとに異なる表情を見せる。", "多くの工夫が重ねられている。",
               "意外な関係があると考えられている。", "今でも大切に受け継がれている。",
               "数字で見ると興味深い傾向がある。", "身近な暮らしと深く結びついている。",
               "さまざまな意見が出されている。", "丁寧な観察が欠かせない。", "新しい技術によって変わりつつある。")
_INSTRUCTIONS = {
    "open_qa": ("{t}とは何ですか？", "{t}はなぜ有名なのですか？"),
    "general_qa": ("{t}について知っておくべきことを教えてください。", "{t}を初めて学ぶ人に助言してください。"),
    "classification": ("次のうち{t}に関係するものを分類してください：{a}、{b}、{c}",
                       "{a}と{b}はどちらが{t}に近いですか？"),
    "closed_qa": ("文章によると、{t}の特徴は何ですか？", "参考文から{t}について分かることを答えてください。"),
    "brainstorming": ("{t}を楽しむアイデアを挙げてください。", "{t}を広めるための方法を考えてください。"),
    "information_extraction": ("文章から{t}に関する事実を抜き出してください。",
                               "本文に出てくる{t}の要点を箇条書きにしてください。"),
    "summarization": ("{t}についての文章を要約してください。", "次の説明を三文でまとめてください。"),
    "creative_writing": ("{t}を題材にした短い物語を書いてください。", "{t}についての詩を作ってください。"),
}


def _paragraph(rng: SplitMix64, topic: str, sentences: int) -> str:
    return "".join(f"{rng.choice(_SUBJECTS)}{topic}は{rng.choice(_PREDICATES)}" for _ in range(sentences))


def sample_records(records: int, seed: int) -> Iterator[dict]:
    """``records`` synthetic records with indexes "0", "1", ...; same arguments, same records."""
    rng = SplitMix64(seed)
    for number in range(records):
        category = rng.weighted(CATEGORIES, _CATEGORY_WEIGHTS)
        topic = rng.choice(_TOPICS)
        template = rng.choice(_INSTRUCTIONS[category])
        instruction = template.format(t=topic, a=rng.choice(_TOPICS), b=rng.choice(_TOPICS), c=rng.choice(_TOPICS))
        has_input = category in _WITH_INPUT or rng.below(10) == 0
        passage = _paragraph(rng, topic, 2 + rng.below(12)) if has_input else ""
        if rng.below(4) == 0:
            passage = passage.replace("。", "。\n", 1)  # some multi-line text, as in the real data
        yield {
            "index": str(number),
            "instruction": SYNTHETIC_MARK + instruction,
            "input": passage,
            "output": _paragraph(rng, topic, 1 + rng.below(8)),
            "category": category,
        }
