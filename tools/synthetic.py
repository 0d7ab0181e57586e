"""Synthetic tabular data sets generated to a described schema with a fixed seed.

They stand in for real data in demos, tests and benchmarks (no downloads at run time),
so they try to look like the real thing: mixed numeric and categorical columns, an id
column, a few percent of missing values, sensitive attributes (``gender``, ``age_band``)
that are *not* used to generate the target but correlate with features that are (as in
real data), and a binary target whose signal a reasonable model can learn (ROC AUC of
roughly 0.75-0.9).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

SCHEMAS = ("credit", "churn", "fraud")

# schema -> (target column, sensitive columns, one-line description)
SCHEMA_INFO: dict[str, tuple[str, tuple[str, ...], str]] = {
    "credit": (
        "default",
        ("gender", "age_band"),
        "Consumer loan applications; target `default` = the loan defaulted within 12 months.",
    ),
    "churn": (
        "churned",
        ("gender", "age_band"),
        "Telecom subscribers; target `churned` = the customer left within the next quarter.",
    ),
    "fraud": (
        "is_fraud",
        ("gender", "age_band"),
        "Card transactions; target `is_fraud` = the transaction was confirmed fraudulent.",
    ),
}

AGE_BANDS = ("18-25", "26-35", "36-50", "51-65", "65+")


def generate(schema: str, rows: int, seed: int) -> pd.DataFrame:
    """A data frame of ``rows`` rows for ``schema``; the same seed gives the same frame."""
    import numpy as np

    makers: dict[str, Callable[[np.random.Generator, int], pd.DataFrame]] = {
        "credit": _credit,
        "churn": _churn,
        "fraud": _fraud,
    }
    return makers[schema](np.random.default_rng(seed), rows)


# --------------------------------------------------------------------------- helpers


def _sigmoid(x: np.ndarray) -> np.ndarray:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-x))


def _binary_target(rng: np.random.Generator, score: np.ndarray, rate: float) -> np.ndarray:
    """Bernoulli draws from sigmoid(score + b), with b chosen so the mean rate is ``rate``."""
    import numpy as np

    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if _sigmoid(score + mid).mean() < rate:
            lo = mid
        else:
            hi = mid
    return (rng.random(score.shape[0]) < _sigmoid(score + lo)).astype(np.int64)


def _age_and_band(rng: np.random.Generator, n: int, mean: float = 42.0) -> tuple[Any, Any]:
    import numpy as np

    age = np.clip(rng.normal(mean, 13.0, n), 18, 85).round().astype(np.int64)
    edges = np.array([25, 35, 50, 65])
    band = np.array(AGE_BANDS, dtype=object)[np.searchsorted(edges, age, side="left")]
    return age, band


def _gender(rng: np.random.Generator, n: int) -> Any:
    return rng.choice(["female", "male", "nonbinary"], n, p=[0.49, 0.48, 0.03]).astype(object)


def _with_missing(rng: np.random.Generator, values: Any, rate: float) -> Any:
    """A copy of ``values`` (float or object) with about ``rate`` of entries missing."""
    import numpy as np

    out = np.array(values, dtype=float if values.dtype.kind in "fiu" else object)
    out[rng.random(out.shape[0]) < rate] = np.nan if out.dtype == float else None
    return out


def _ids(prefix: str, n: int) -> Any:
    import numpy as np

    return np.char.add(prefix, np.char.zfill(np.arange(1, n + 1).astype(str), 7)).astype(object)


def _frame(columns: dict[str, Any]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(columns)


# --------------------------------------------------------------------------- schemas


def _credit(rng: np.random.Generator, n: int) -> pd.DataFrame:
    import numpy as np

    gender = _gender(rng, n)
    age, age_band = _age_and_band(rng, n)
    employment_type = rng.choice(
        ["salaried", "self_employed", "contract", "unemployed"], n, p=[0.62, 0.18, 0.14, 0.06]
    ).astype(object)
    unemployed = employment_type == "unemployed"
    employment_years = np.minimum(rng.gamma(2.0, 3.5, n), age - 17).round(1)
    employment_years[unemployed] = 0.0
    # Structural gaps that exist in real data: income differs by gender and age, and the
    # target depends on income -- so a model can be unfair without seeing `gender`.
    log_income = (
        np.log(52_000)
        + 0.012 * (np.minimum(age, 60) - 42)
        - 0.12 * (gender == "female")
        - 0.9 * unemployed
        + 0.1 * (employment_type == "self_employed")
        + rng.normal(0, 0.45, n)
    )
    income = np.exp(log_income).round(-2)
    home_ownership = np.where(
        rng.random(n) < np.clip((age - 20) / 50, 0.05, 0.8),
        rng.choice(["mortgage", "own"], n, p=[0.7, 0.3]),
        "rent",
    ).astype(object)
    loan_purpose = rng.choice(
        ["debt_consolidation", "car", "home_improvement", "education", "business", "other"],
        n,
        p=[0.35, 0.2, 0.15, 0.1, 0.08, 0.12],
    ).astype(object)
    loan_amount = np.clip(np.exp(rng.normal(np.log(14_000), 0.65, n)), 1_000, 120_000).round(-2)
    loan_term_months = rng.choice([12, 24, 36, 48, 60], n, p=[0.1, 0.2, 0.35, 0.15, 0.2])
    credit_history_years = np.clip((age - 18) * rng.uniform(0.3, 1.0, n), 0, None).round(1)
    num_credit_lines = rng.poisson(2 + credit_history_years / 6)
    credit_utilization = rng.beta(2.0, 3.5, n).round(3)
    num_late_payments = rng.poisson(0.2 + 2.5 * credit_utilization**2)
    monthly_payment = loan_amount / loan_term_months * 1.08
    debt_to_income = np.clip(
        12 * monthly_payment / income + rng.normal(0.15, 0.08, n), 0.01, 3.0
    ).round(3)
    region = rng.choice(["north", "south", "east", "west", "central"], n).astype(object)
    score = (
        1.8 * (credit_utilization - 0.35)
        + 0.45 * num_late_payments
        + 1.6 * (debt_to_income - 0.4)
        - 0.55 * np.log(income / 50_000)
        - 0.03 * employment_years
        - 0.025 * credit_history_years
        + 0.5 * unemployed
        + 0.3 * (loan_purpose == "business")
        + 0.25 * (home_ownership == "rent")
        + rng.normal(0, 0.35, n)
    )
    score = 1.7 * score
    interest_rate = np.clip(6.5 + 1.3 * score + rng.normal(0, 2.0, n), 3.0, 29.9).round(2)
    default = _binary_target(rng, score, rate=0.18)
    return _frame(
        {
            "applicant_id": _ids("APP-", n),
            "gender": gender,
            "age": age,
            "age_band": age_band,
            "employment_type": employment_type,
            "employment_years": _with_missing(rng, employment_years, 0.03),
            "annual_income": _with_missing(rng, income, 0.04),
            "home_ownership": _with_missing(rng, home_ownership, 0.01),
            "region": region,
            "loan_purpose": loan_purpose,
            "loan_amount": loan_amount,
            "loan_term_months": loan_term_months.astype(np.int64),
            "interest_rate": interest_rate,
            "debt_to_income": debt_to_income,
            "credit_history_years": credit_history_years,
            "num_credit_lines": num_credit_lines.astype(np.int64),
            "credit_utilization": _with_missing(rng, credit_utilization, 0.02),
            "num_late_payments": num_late_payments.astype(np.int64),
            "default": default,
        }
    )


def _churn(rng: np.random.Generator, n: int) -> pd.DataFrame:
    import numpy as np

    gender = _gender(rng, n)
    age, age_band = _age_and_band(rng, n, mean=45.0)
    tenure_months = np.clip(rng.exponential(24.0, n), 0, 72).round().astype(np.int64)
    contract = rng.choice(
        ["month_to_month", "one_year", "two_year"], n, p=[0.55, 0.25, 0.2]
    ).astype(object)
    internet_service = np.where(
        age > 65,
        rng.choice(["dsl", "fiber", "none"], n, p=[0.5, 0.2, 0.3]),
        rng.choice(["dsl", "fiber", "none"], n, p=[0.35, 0.5, 0.15]),
    ).astype(object)
    payment_method = rng.choice(
        ["electronic_check", "mailed_check", "bank_transfer", "credit_card"],
        n,
        p=[0.34, 0.2, 0.23, 0.23],
    ).astype(object)
    base_charge = np.select(
        [internet_service == "fiber", internet_service == "dsl"], [85.0, 55.0], default=25.0
    )
    monthly_charges = np.clip(base_charge + rng.normal(0, 12, n), 15, 140).round(2)
    total_charges = (
        monthly_charges * np.maximum(tenure_months, 1) * rng.uniform(0.95, 1.05, n)
    ).round(2)
    num_support_calls = rng.poisson(1.2 + 0.8 * (internet_service == "fiber"))
    satisfaction_score = np.clip(np.round(rng.normal(3.6, 1.0, n) - 0.25 * num_support_calls), 1, 5)
    days_since_last_login = np.clip(rng.exponential(9.0, n), 0, 180).round().astype(np.int64)
    num_products = 1 + rng.poisson(0.9, n)
    paperless_billing = rng.choice(["yes", "no"], n, p=[0.6, 0.4]).astype(object)
    score = (
        1.3 * (contract == "month_to_month")
        - 0.6 * (contract == "two_year")
        - 0.045 * tenure_months
        + 0.45 * (internet_service == "fiber")
        + 0.4 * (payment_method == "electronic_check")
        + 0.3 * num_support_calls
        - 0.55 * (satisfaction_score - 3)
        + 0.03 * days_since_last_login
        - 0.25 * (num_products - 1)
        + 0.008 * (monthly_charges - 60)
        + rng.normal(0, 0.4, n)
    )
    churned = _binary_target(rng, score, rate=0.26)
    return _frame(
        {
            "customer_id": _ids("CUST-", n),
            "gender": gender,
            "age": age,
            "age_band": age_band,
            "senior_citizen": (age >= 65).astype(np.int64),
            "tenure_months": tenure_months,
            "contract": contract,
            "internet_service": internet_service,
            "payment_method": payment_method,
            "paperless_billing": paperless_billing,
            "monthly_charges": monthly_charges,
            "total_charges": _with_missing(rng, total_charges, 0.02),
            "num_products": num_products.astype(np.int64),
            "num_support_calls": num_support_calls.astype(np.int64),
            "satisfaction_score": _with_missing(rng, satisfaction_score, 0.05),
            "days_since_last_login": days_since_last_login,
            "churned": churned,
        }
    )


def _fraud(rng: np.random.Generator, n: int) -> pd.DataFrame:
    import numpy as np

    gender = _gender(rng, n)
    _, age_band = _age_and_band(rng, n, mean=40.0)
    merchant_category = rng.choice(
        ["grocery", "electronics", "travel", "dining", "online_retail", "fuel", "entertainment"],
        n,
        p=[0.25, 0.1, 0.08, 0.2, 0.2, 0.1, 0.07],
    ).astype(object)
    avg_amount_30d = np.exp(rng.normal(np.log(60), 0.6, n)).round(2)
    amount = (avg_amount_30d * np.exp(rng.normal(0, 0.8, n))).round(2)
    hour = rng.choice(24, n, p=_hour_weights())
    day_of_week = rng.choice(["mon", "tue", "wed", "thu", "fri", "sat", "sun"], n).astype(object)
    distance_from_home_km = np.exp(rng.normal(np.log(8), 1.3, n)).round(1)
    is_foreign = (rng.random(n) < 0.05).astype(np.int64)
    card_present = (
        rng.random(n) < np.where(merchant_category == "online_retail", 0.02, 0.75)
    ).astype(np.int64)
    account_age_days = np.clip(rng.exponential(900, n), 1, 7000).round().astype(np.int64)
    num_tx_last_24h = rng.poisson(2.5, n)
    device_type = np.where(
        card_present == 1, "pos_terminal", rng.choice(["mobile", "desktop"], n, p=[0.6, 0.4])
    ).astype(object)
    ratio = amount / avg_amount_30d
    night = (hour <= 5).astype(float)
    score = (
        0.9 * np.log(ratio)
        + 1.1 * is_foreign
        + 0.8 * night
        - 0.9 * card_present
        - 0.35 * np.log(account_age_days / 365 + 0.1)
        + 0.2 * num_tx_last_24h
        + 0.5 * (merchant_category == "electronics")
        + 0.3 * (merchant_category == "travel")
        + 0.25 * np.log1p(distance_from_home_km / 50)
        + rng.normal(0, 0.4, n)
    )
    is_fraud = _binary_target(rng, 1.8 * score, rate=0.08)
    return _frame(
        {
            "transaction_id": _ids("TX-", n),
            "gender": gender,
            "age_band": age_band,
            "merchant_category": merchant_category,
            "amount": amount,
            "avg_amount_30d": _with_missing(rng, avg_amount_30d, 0.03),
            "hour": hour.astype(np.int64),
            "day_of_week": day_of_week,
            "distance_from_home_km": _with_missing(rng, distance_from_home_km, 0.04),
            "is_foreign": is_foreign,
            "card_present": card_present,
            "device_type": device_type,
            "account_age_days": account_age_days,
            "num_tx_last_24h": num_tx_last_24h.astype(np.int64),
            "is_fraud": is_fraud,
        }
    )


def _hour_weights() -> Any:
    import numpy as np

    w = np.array(
        [
            1,
            0.6,
            0.4,
            0.3,
            0.3,
            0.5,
            1,
            2,
            3,
            3.5,
            4,
            4.5,
            5,
            4.5,
            4,
            4,
            4.5,
            5,
            5.5,
            5,
            4,
            3,
            2,
            1.5,
        ]
    )
    return w / w.sum()
