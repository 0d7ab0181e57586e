"""The rule language of Domino policies: a safe evaluator for a small Go subset.

Classification rules (``classification.rule``) are Go snippets over
``classificationInputs["alias"].(string)``; visibility rules (``visibilityRule``) are Go
expressions over ``classificationValue``. Supported: ``var x T [= e]``, ``x := e``,
``x = e``, ``m[i] = e``, ``if / else if / else``, ``return``, ``== != < > <= >=``,
``&& || !``, ``+ - * / %``, parentheses, string / raw-string / rune / number / bool
literals, indexing, ``.(string|float64|int|bool)`` assertions, ``string()``,
``float64()``, ``int()``, ``[]rune()`` conversions. Anything else (loops, function
calls, packages, ...) is a :class:`RuleSyntaxError` when the policy is loaded.

A rule that is a single name (``rule: implementation-tier``) is the value of that alias.
"""

from mpm.governance.rules.compiler import Rule, Visibility, compile_rule, compile_visibility
from mpm.governance.rules.errors import RuleEvaluationError, RuleLimitError, RuleSyntaxError
from mpm.governance.rules.interpreter import Rune

__all__ = [
    "Rule",
    "RuleEvaluationError",
    "RuleLimitError",
    "RuleSyntaxError",
    "Rune",
    "Visibility",
    "compile_rule",
    "compile_visibility",
]
