"""Named answer extractors and the verifier options check."""

from __future__ import annotations

import doctest

import pytest

import secondtry.verifiers.extract as ex
from secondtry.verifiers import VERIFIERS, check_options, options_of


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("boxed", r"a \boxed{1} b \boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        ("boxed", "no box", None),
        ("boxed", r"\boxed{}", ""),
        ("answer_is", "So the answer is $\\frac{3}{4}$.", r"\frac{3}{4}"),
        ("answer_is", "Answer: 12\nmore text", "12"),
        ("answer_is", "The final answer is 3.5. Done", "3.5"),
        ("answer_is", "no marker", None),
        ("minerva", "Final Answer: The final answer is $x^2$. I hope it is correct.", "x^2"),
        ("minerva", "The final answer is 3.", None),
        ("hashes", "work\n#### 1,234\n", "1,234"),
        ("hashes", "no hashes", None),
        ("last_number", "3 apples and -2.5 pears, 1,000 in all", "1,000"),
        ("last_number", "none", None),
        ("last_math", r"so $x=1$ and \(y=2\)", "y=2"),
        ("last_math", "no math", None),
        (
            "last_math",
            r"so $x = 2$, and the total is 12 apples.",
            "12",
        ),  # a bare number after the last segment
        ("last_math", r"we get $x=4$ and then \(\sqrt[3]{4} + 3", "x=4"),  # a cut-off segment holds no answer
        ("last_math", "it costs $5 and $6 more", "6"),
        ("answer_header", "Adding up.\n\n# Answer\n\n468", "468"),
        ("answer_header", "## Final Answer\n$\\frac{1}{2}$", r"\frac{1}{2}"),
        ("answer_header", "**Final Answer:** 12", "12"),
        ("answer_header", "**Answer**\n\n(3, 4)\n", "(3, 4)"),
        ("answer_header", "She sells 9 eggs.\nA: 18", "18"),
        ("answer_header", "A: 18\nthen more text", None),  # 'A:' is a header only as the last line
        ("answer_header", "Answer the question below.\nIt is 5.", None),
        ("answer_header", "no header", None),
        ("math_verify", r"so we find that $x = \frac{3}{4}$ and stop", r"x = \frac{3}{4}"),
        ("math_verify", "no math at all", None),
        (r"regex:Result=(\d+)", "Result=1 then Result=22", "22"),
        (r"regex:\d+", "a 5 b 6", "6"),
    ],
)
def test_extractors(name: str, text: str, expected: str | None) -> None:
    assert ex.get(name)(text) == expected


def test_first_present_marker_decides() -> None:
    assert ex.extract(r"\boxed{} The answer is 3", ["boxed", "answer_is"]) == ("", "boxed")
    assert ex.extract("The answer is 3", ["boxed", "answer_is"]) == ("3", "answer_is")


@pytest.mark.parametrize(
    ("name", "match"), [("nope", "unknown extractor"), ("regex:(", "bad regular expression")]
)
def test_bad_extractor_names(name: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ex.get(name)


def test_doctests() -> None:
    assert doctest.testmod(ex).failed == 0


def test_chain_order_and_names() -> None:
    assert ex.CHAIN == ("boxed", "answer_is", "answer_header", "last_math", "math_verify")
    assert all(name in ex.EXTRACTORS for name in ex.CHAIN)  # each stays nameable on its own
    text = "We get $x = 4$.\n\n# Answer\n\n4"
    assert ex.extract(text, ex.CHAIN) == ("4", "answer_header")
    assert ex.extract(text, ["last_math"]) == ("4", "last_math")
    assert ex.extract(r"$\boxed{7}$ and the answer is 8", ex.CHAIN) == ("7", "boxed")


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("zero", "0"),
        ("five", "5"),
        ("Nineteen", "19"),
        ("twenty", "20"),
        ("forty-two", "42"),
        ("ninety nine", "99"),
        ("a half", "1/2"),
        ("one half", "1/2"),
        ("two thirds", "2/3"),
        ("three quarters", "3/4"),
        ("a quarter", "1/4"),
        ("negative four", "-4"),
        ("five apples", "5"),
        ("seven square units", "7"),
        ("$six$.", "6"),
        ("five or six", None),
        ("someone", None),
        ("5", None),
        ("the answer", None),
        ("", None),
        ("one of the two numbers we found above", None),
    ],
)
def test_spelled_numbers(text: str, number: str | None) -> None:
    assert ex.spelled_number(text) == number


def test_options_of_lists_keyword_options() -> None:
    assert set(options_of("math")) == {"extractors", "compare", "equations"}
    assert set(options_of("numeric")) == {"extractors"}
    assert options_of("synthetic") == {}


def test_check_options_accepts_and_coerces() -> None:
    assert check_options("math", {"extractors": ["boxed"], "compare": "minerva"}) == {
        "extractors": ["boxed"],
        "compare": "minerva",
    }
    assert check_options("math", {}) == {}


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        (
            "math",
            {"extractor": ["boxed"]},
            r"no option\(s\) extractor; valid: extractors, compare, equations",
        ),
        ("math", {"equations": "same"}, r"verifier.options.equations"),
        ("math", {"extractors": "boxed"}, r"verifier.options.extractors"),  # a string is not a list of names
        ("math", {"extractors": ["boxd"]}, "unknown extractor 'boxd'"),
        ("math", {"compare": "nope"}, "unknown grader 'nope'"),
        ("numeric", {"extractors": [3]}, r"verifier.options.extractors.0"),
        ("synthetic", {"anything": 1}, "valid: none"),
    ],
)
def test_check_options_errors(name: str, options: dict, match: str) -> None:
    assert name in VERIFIERS
    with pytest.raises(ValueError, match=match):
        check_options(name, options)


def test_escaped_dollar_inside_math_is_not_a_delimiter() -> None:
    assert ex.answer_is(r"The final answer is $\$18.90$.") == r"\$18.90"
    assert ex.answer_is(r"The answer is $5$ and $6$.") == "5"
