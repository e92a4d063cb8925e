"""BM25 search over the shipped Factbook collection."""

from __future__ import annotations

import pytest

from agentsim.chat import FunctionCall, ToolCall
from agentsim.tools import load_tools, run_tool_call
from agentsim.tools.search import BM25Index, Document, default_index, search, tokenize


def test_tokenize_drops_case_punctuation_and_stopwords() -> None:
    assert tokenize("What is the Capital of PERU?") == ["capital", "peru"]


def test_bm25_prefers_rarer_terms_and_shorter_documents() -> None:
    docs = [
        Document("a", "apple apple banana"),
        Document("b", "banana cherry"),
        Document("c", "banana banana banana banana cherry cherry date date date date"),
        Document("d", "nothing here"),
    ]
    index = BM25Index(docs, title_weight=0)
    top = index.top("apple", 5)
    assert [d.title for d, _ in top] == ["a"]
    top = index.top("cherry", 5)
    assert [d.title for d, _ in top] == ["b", "c"]
    assert index.idf("apple") > index.idf("banana")
    assert index.top("zebra", 3) == []


def test_bm25_scores_match_the_formula() -> None:
    docs = [Document("x", "cat dog"), Document("y", "dog dog bird")]
    index = BM25Index(docs, k1=1.2, b=0.75, title_weight=0)
    avg = 2.5
    idf = index.idf("dog")
    expected = idf * 1 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 2 / avg))
    assert index.scores("dog")[0] == pytest.approx(expected)


def test_collection_is_a_few_thousand_paragraphs() -> None:
    assert len(default_index().docs) > 5000


@pytest.mark.parametrize(
    ("query", "title", "fact"),
    [
        ("capital of Peru", "Peru - Government - Capital", "Lima"),
        ("highest point Nepal elevation", "Nepal - Geography - Elevation", "Mount Everest"),
        ("Brazil languages", "Brazil - People and Society - Languages", "Portuguese"),
    ],
)
def test_search_finds_the_fact(query: str, title: str, fact: str) -> None:
    out = search(query, k=3)
    assert title in out
    assert fact in out
    assert out.startswith("[1] ")


def test_search_returns_k_results_and_reports_nothing_found() -> None:
    assert search("population", k=5).count("\n[") == 4
    assert search("qwxzv") == "No results for 'qwxzv'."


def test_k_out_of_range_is_invalid_tool_arguments() -> None:
    tools = load_tools(["search"])
    call = ToolCall(
        id="c", function=FunctionCall(name="search", arguments='{"query": "x", "k": 50}')
    )
    outcome = run_tool_call(call, tools)
    assert outcome.problem == "invalid_tool_arguments"
    assert outcome.detail == "search: Expected `int` <= 10 - at `$.k`"
