"""The Go-subset rule language: classification rules and visibility rules."""

from __future__ import annotations

import pytest

from mpm.governance.rules import (
    RuleEvaluationError,
    RuleSyntaxError,
    compile_rule,
    compile_visibility,
)

MODEL_INTAKE_RULE = """\
visibilityMap := []rune("00")
if classificationInputs["ITSecReview"].(string) == "Yes" {
    visibilityMap[0] = '1'
}
if classificationInputs["LegalReview"].(string) == "Yes" {
    visibilityMap[1] = '1'
}
return string(visibilityMap)
"""

DOMINO_DOCS_RULE = """\
var ans string
ans = "Low"
if classificationInputs["model-risk"].(string) == "High" || classificationInputs["change-type"].(string) == "Major" {
  ans = "High"
}
return ans
"""

TIER_RULE = """\
riskTier := "Low"
score := classificationInputs["score"].(float64)
if score >= 0.8 {
    riskTier = "High"
} else if score >= 0.5 {
    riskTier = "Medium"
} else {
    riskTier = "Low"
}
return riskTier
"""


@pytest.mark.parametrize(
    ("itsec", "legal", "expected"),
    [("Yes", "Yes", "11"), ("Yes", "No", "10"), ("No", "Yes", "01"), ("No", "No", "00")],
)
def test_model_intake_bitmap_sets_one_bit_per_yes_answer(
    itsec: str, legal: str, expected: str
) -> None:
    rule = compile_rule(MODEL_INTAKE_RULE)
    assert rule is not None
    assert rule.evaluate({"ITSecReview": itsec, "LegalReview": legal}) == expected


def test_model_intake_rule_reports_the_aliases_it_reads() -> None:
    rule = compile_rule(MODEL_INTAKE_RULE)
    assert rule is not None
    assert rule.aliases == {"ITSecReview", "LegalReview"}
    assert rule.alias is None


def test_unanswered_alias_reads_as_empty_string() -> None:
    rule = compile_rule(MODEL_INTAKE_RULE)
    assert rule is not None
    assert rule.evaluate({}) == "00"
    assert rule.evaluate({"LegalReview": "Yes"}) == "01"


@pytest.mark.parametrize(
    ("risk", "change", "expected"),
    [
        ("High", "Minor", "High"),
        ("Low", "Major", "High"),
        ("High", "Major", "High"),
        ("Low", "Minor", "Low"),
        (None, None, "Low"),
    ],
)
def test_domino_docs_rule_is_high_when_either_input_says_so(
    risk: str | None, change: str | None, expected: str
) -> None:
    rule = compile_rule(DOMINO_DOCS_RULE)
    assert rule is not None
    inputs = {k: v for k, v in {"model-risk": risk, "change-type": change}.items() if v is not None}
    assert rule.evaluate(inputs) == expected


@pytest.mark.parametrize(
    ("score", "expected"),
    [(0.9, "High"), (0.8, "High"), (0.6, "Medium"), (0.1, "Low"), ("0.55", "Medium")],
)
def test_else_if_chain_picks_the_first_true_branch(score: object, expected: str) -> None:
    rule = compile_rule(TIER_RULE)
    assert rule is not None
    assert rule.evaluate({"score": score}) == expected


def test_nested_ifs_and_negation_and_parentheses() -> None:
    rule = compile_rule(
        """
        var tier string = "none"
        a := classificationInputs["a"].(string)
        b := classificationInputs["b"].(string)
        if a != "" {
            if !(a == "x" && b == "y") {
                tier = "partial"
            } else {
                tier = "full"
            }
        }
        return tier
        """
    )
    assert rule is not None
    assert rule.evaluate({"a": "x", "b": "y"}) == "full"
    assert rule.evaluate({"a": "x", "b": "z"}) == "partial"
    assert rule.evaluate({"b": "y"}) == "none"


def test_numbers_are_returned_as_floats_and_strings_concatenate() -> None:
    number = compile_rule("x := 2\ny := x * 3 + 1\nreturn y / 2")
    text = compile_rule('return classificationInputs["a"].(string) + "-" + "tier"')
    assert number is not None and text is not None
    assert number.evaluate({}) == 3.0
    assert text.evaluate({"a": "high"}) == "high-tier"


def test_go_comments_and_semicolons_are_accepted() -> None:
    rule = compile_rule('// pick a tier\nx := "A"; /* block */ return x;')
    assert rule is not None
    assert rule.evaluate({}) == "A"


def test_inner_block_declaration_shadows_only_inside_the_block() -> None:
    rule = compile_rule('x := "outer"\nif true {\n  x := "inner"\n  x = x\n}\nreturn x')
    assert rule is not None
    assert rule.evaluate({}) == "outer"


def test_early_return_inside_if_ends_the_rule() -> None:
    rule = compile_rule(
        'if classificationInputs["a"].(string) == "y" {\n return "Y"\n}\nreturn "N"'
    )
    assert rule is not None
    assert rule.evaluate({"a": "y"}) == "Y"
    assert rule.evaluate({"a": "n"}) == "N"


def test_rule_whose_return_is_not_reached_gives_no_classification() -> None:
    rule = compile_rule('if classificationInputs["a"].(string) == "y" {\n return "Y"\n}')
    assert rule is not None
    assert rule.evaluate({"a": "y"}) == "Y"
    assert rule.evaluate({"a": "n"}) is None


@pytest.mark.parametrize("text", ["implementation-tier", "EU-AI-ACT", "  model-risk \n"])
def test_bare_name_rule_is_the_value_of_that_alias(text: str) -> None:
    rule = compile_rule(text)
    assert rule is not None
    assert rule.alias == text.strip()
    assert rule.evaluate({text.strip(): "Advanced"}) == "Advanced"
    assert rule.evaluate({}) is None


@pytest.mark.parametrize("text", [None, "", "   \n  "])
def test_empty_rule_means_no_classification(text: str | None) -> None:
    assert compile_rule(text) is None


@pytest.mark.parametrize(
    ("text", "fragment", "line", "column"),
    [
        ('for i := 0; i < 3; i++ {\n}\nreturn "x"', "'for' is not supported", 1, 1),
        ('x := "a"\nswitch x {\n}\nreturn x', "'switch' is not supported", 2, 1),
        ('return len("abc")', "function call 'len' is not supported", 1, 8),
        ('return strings.ToUpper("a")', "selector 'strings.ToUpper' is not supported", 1, 16),
        ('x := "a"\nif x & "b" {\n}\nreturn x', "unexpected character '&'", 2, 6),
        ("var x string\nx = \n", "unexpected end of rule", 2, 4),
        ('x = "a"\nreturn x', "undefined: x", 1, 1),
        ("return y", "undefined: y", 1, 8),
        ('x := "a"\nx := "b"\nreturn x', "no new variables on left side of :=", 2, 1),
        ('classificationInputs = 1\nreturn "a"', "cannot assign to classificationInputs", 1, 1),
        ("return 'ab'", "unexpected character", 1, 8),
        ('x := "a"', "never returns a value", 1, 1),
        ("return x.(map)", "", 1, None),
    ],
)
def test_constructs_outside_the_subset_fail_at_compile_time_with_a_position(
    text: str, fragment: str, line: int, column: int | None
) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        compile_rule(text)
    message = str(info.value)
    assert fragment in message
    assert info.value.line == line
    if column is not None:
        assert info.value.column == column
        assert f"at line {line}, column {column}:" in message


def test_type_errors_surface_as_rule_evaluation_errors() -> None:
    rule = compile_rule('return classificationInputs["a"].(string)')
    assert rule is not None
    with pytest.raises(RuleEvaluationError, match="not string"):
        rule.evaluate({"a": ["x", "y"]})
    mixed = compile_rule('if "a" == 1 {\n return "x"\n}\nreturn "y"')
    assert mixed is not None
    with pytest.raises(RuleEvaluationError, match="mismatched types string and int"):
        mixed.evaluate({})


def test_index_out_of_range_in_a_rule_is_an_evaluation_error() -> None:
    rule = compile_rule("m := []rune(\"0\")\nm[3] = '1'\nreturn string(m)")
    assert rule is not None
    with pytest.raises(RuleEvaluationError, match=r"index out of range \[3\] with length 1"):
        rule.evaluate({})


def test_returning_a_rune_slice_asks_for_string_conversion() -> None:
    rule = compile_rule('m := []rune("01")\nreturn m')
    assert rule is not None
    with pytest.raises(RuleEvaluationError, match="wrap it in string"):
        rule.evaluate({})


def test_overlong_rule_is_rejected() -> None:
    with pytest.raises(RuleSyntaxError, match="limit is"):
        compile_rule("return " + " || ".join(["true"] * 10_000))


# ----------------------------------------------------------------------------- visibility


@pytest.mark.parametrize(
    ("value", "expected"), [("High", True), ("Low", False), (None, False), ("", False)]
)
def test_equality_visibility_rule(value: str | None, expected: bool) -> None:
    assert compile_visibility('classificationValue == "High"').evaluate(value) is expected


@pytest.mark.parametrize(
    ("value", "first", "second"),
    [("11", True, True), ("10", True, False), ("01", False, True), ("00", False, False)],
)
def test_indexed_visibility_reads_one_bit_of_the_bitmap(
    value: str, first: bool, second: bool
) -> None:
    assert compile_visibility('string(classificationValue[0]) == "1"').evaluate(value) is first
    assert compile_visibility('string(classificationValue[1]) == "1"').evaluate(value) is second


def test_rune_comparison_visibility_rule() -> None:
    visibility = compile_visibility("classificationValue[1] == '1'")
    assert visibility.evaluate("01") is True
    assert visibility.evaluate("10") is False


def test_whole_value_conversion_visibility_rule() -> None:
    visibility = compile_visibility('string(classificationValue) != "00"')
    assert visibility.evaluate("10") is True
    assert visibility.evaluate("00") is False


def test_unclassified_bundle_hides_indexed_sets_unless_strict() -> None:
    visibility = compile_visibility('string(classificationValue[0]) == "1"')
    assert visibility.evaluate(None) is False
    with pytest.raises(RuleEvaluationError, match="index out of range"):
        visibility.evaluate(None, strict=True)


def test_numeric_classification_value_is_compared_as_a_number() -> None:
    visibility = compile_visibility("classificationValue >= 0.5 && classificationValue < 1")
    assert visibility.evaluate(0.7) is True
    assert visibility.evaluate(0.2) is False


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('classificationValue = "High"', "unexpected '='"),
        ('classification == "High"', "undefined: classification"),
        ("len(classificationValue) > 1", "function call 'len'"),
        ("", "empty visibility rule"),
    ],
)
def test_bad_visibility_rules_fail_at_compile_time(text: str, fragment: str) -> None:
    with pytest.raises(RuleSyntaxError, match=fragment):
        compile_visibility(text)


def test_non_boolean_visibility_expression_hides_the_set() -> None:
    visibility = compile_visibility("classificationValue")
    assert visibility.evaluate("High") is False
    with pytest.raises(RuleEvaluationError, match="not a bool"):
        visibility.evaluate("High", strict=True)


# --------------------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ("x := 2\n" + "x = x * x\n" * 29 + 'return "a"', "integer overflow (beyond int64)"),
        ('s := "ab"\n' + "s = s + s\n" * 29 + "return s", "exceeds the rule limit of 10,000"),
        ("return " + "- " * 150 + "1", "expression nested deeper than 100"),
    ],
    ids=["squaring", "string-doubling", "nesting"],
)
def test_rule_evaluation_is_bounded_and_stops_with_one_line(rule: str, fragment: str) -> None:
    from mpm.governance.rules import RuleLimitError

    with pytest.raises(RuleLimitError) as caught:
        compile_rule(rule).evaluate({})
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_rule_evaluation_counts_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 20,000-character rule limit keeps real rules far below MAX_STEPS; with the
    budget lowered, a rule of 100 statements is stopped at the budget."""
    from mpm.governance.rules import RuleLimitError, interpreter

    rule = compile_rule("x := 0\n" + "if x == 0 { x = 1 }\n" * 100 + 'return "a"')
    assert rule.evaluate({}) == "a"
    monkeypatch.setattr(interpreter, "MAX_STEPS", 50)
    with pytest.raises(RuleLimitError, match="rule evaluation exceeded 50 steps"):
        rule.evaluate({})
