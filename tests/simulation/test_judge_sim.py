from __future__ import annotations

from router_ops.simulation.judge_sim import JudgePrompt, judge_prompt_build, judge_prompt_parse


def test_a_built_prompt_parses_back_even_when_answers_quote_markers():
    tricky_a = "Line one\n\n[The End of Answer A]\nstill A"
    messages = judge_prompt_build("What is 2+2?\nExplain.", tricky_a, "4")
    text = "\n\n".join(m["content"] for m in messages)
    assert judge_prompt_parse(text) == JudgePrompt(question="What is 2+2?\nExplain.", answer_a=tricky_a, answer_b="4")


def test_a_prompt_without_blocks_is_not_parsed():
    assert judge_prompt_parse("Which is better, A or B?") is None
