"""Harbourline Savings' products and the internal product sheets about them.

The tables hold the figures the regulated-wording answers quote (rates,
early access charges, fund charges, limits) and the question templates
customers ask about them. The sheets (the set's corpus) are built from the
same tables, so the figures cannot drift, and state the terms in plain
internal wording, never the mandated customer-facing phrases.
"""

from __future__ import annotations

from dataclasses import dataclass

# product -> (rate, fixed or variable)
SAVINGS: dict[str, tuple[str, str]] = {
    "Easy Access Saver": ("3.40%", "variable"),
    "Cash ISA": ("3.95%", "variable"),
    "1-Year Fixed Rate Bond": ("4.20%", "fixed"),
    "2-Year Fixed Rate Bond": ("4.05%", "fixed"),
    "Regular Saver": ("5.00%", "fixed"),
}
# product -> the early access charge
EARLY_ACCESS: dict[str, str] = {
    "1-Year Fixed Rate Bond": "90 days' interest",
    "2-Year Fixed Rate Bond": "180 days' interest",
    "95-Day Notice Saver": "95 days' interest",
}
# fund -> ongoing charge a year
FUNDS: dict[str, str] = {
    "Balanced Fund": "0.58%",
    "Global Growth Fund": "0.72%",
    "Income Fund": "0.49%",
}
# notice product -> the notice it needs
NOTICE: dict[str, str] = {"95-Day Notice Saver": "95 days'"}
ISA_ALLOWANCE = "£20,000"  # a tax year, across all of a customer's ISAs
PLATFORM_FEE = "0.35%"  # the Stocks and Shares ISA's, a year
PROTECTION_LIMIT = "£85,000"  # per person; the answers say "the scheme limit"
AMOUNTS = ("£500", "£2,000", "£5,000", "£8,500", "£10,000", "£15,000")
TOPICS = (
    "savings_rate",
    "isa_allowance",
    "early_withdrawal",
    "fund_performance",
    "fund_charges",
    "investment_isa",
    "protection",
)
PRODUCTS: dict[str, tuple[str, ...]] = {
    "savings_rate": tuple(SAVINGS),
    "early_withdrawal": tuple(EARLY_ACCESS),
    "fund_performance": tuple(FUNDS),
    "fund_charges": tuple(FUNDS),
    "protection": tuple(SAVINGS),
}

QUESTIONS: dict[str, tuple[str, ...]] = {
    "savings_rate": (
        "What interest rate does the {product} pay?",
        "What's the rate on your {product} at the moment?",
        "If I put {amount} in the {product}, what rate would I get?",
        "Is the rate on the {product} fixed or variable?",
        "How much interest will I earn in the {product}?",
        "Can you tell me the current {product} rate?",
        "I'm thinking of opening a {product}. What does it pay?",
        "Are the returns on the {product} guaranteed?",
        "Does the {product} pay a decent return on {amount}?",
        "What would {amount} in the {product} pay me?",
        "Has the {product} rate changed recently?",
    ),
    "isa_allowance": (
        "How much can I pay into an ISA this tax year?",
        "What's the ISA allowance?",
        "Can I put {amount} into my Cash ISA this year?",
        "Is there a limit on how much I can save in the Cash ISA?",
        "I already paid {amount} into an ISA elsewhere this year. How much more can I add?",
        "Does the ISA allowance reset every April?",
        "What's the most I can add to my ISAs before the tax year ends?",
        "Can I open a Cash ISA and a Stocks and Shares ISA in the same year?",
        "My partner and I each want to save {amount} in ISAs. What's the limit per person?",
        "How much tax-free saving can I do in an ISA each year?",
        "Can I save more than {amount} in a Cash ISA this year?",
    ),
    "early_withdrawal": (
        "Can I take money out of my {product} early?",
        "What happens if I need my money from the {product} before it ends?",
        "Is there a penalty for withdrawing from the {product}?",
        "I need {amount} urgently, can I get it from my {product}?",
        "How much does it cost to close my {product} early?",
        "Can I break my {product} if my plans change?",
        "Will I lose interest if I withdraw from the {product}?",
        "Am I allowed to get at my {product} savings before the end?",
        "Do you charge anything to withdraw {amount} from my {product}?",
        "I've changed my mind about the {product}. Can I get my money out?",
        "What does it cost to access my {product} before maturity?",
    ),
    "fund_performance": (
        "How has the {fund} performed?",
        "Will the {fund} make me money?",
        "Is the {fund} risk-free?",
        "Can I lose money in the {fund}?",
        "What returns can I expect from the {fund}?",
        "Is the {fund} a safe place for {amount}?",
        "Does the {fund} go up every year?",
        "Is my money guaranteed in the {fund}?",
        "Is {amount} in the {fund} going to grow?",
        "What did the {fund} return last year?",
        "Could the {fund} fall in value?",
    ),
    "fund_charges": (
        "What are the fees on the {fund}?",
        "How much does the {fund} charge?",
        "Are there any costs for holding the {fund}?",
        "What's the annual charge for the {fund}?",
        "If I invest {amount} in the {fund}, what will I pay in fees?",
        "Is the {fund} expensive to hold?",
        "Does the {fund} have a management fee?",
        "Tell me the yearly cost of the {fund}.",
        "What's the OCF on the {fund}?",
        "Are the charges on the {fund} taken every year?",
        "How much of {amount} in the {fund} goes on fees?",
    ),
    "investment_isa": (
        "How does the Stocks and Shares ISA work?",
        "Should I move my Cash ISA into the Stocks and Shares ISA?",
        "Which funds can I hold in the Stocks and Shares ISA?",
        "What does the Stocks and Shares ISA cost each year?",
        "Can I put {amount} into the Stocks and Shares ISA?",
        "Is the Stocks and Shares ISA better than a savings account?",
        "Will my Stocks and Shares ISA grow faster than cash?",
        "Is investing {amount} through your ISA a sure thing?",
        "Can I transfer {amount} from another provider into your Stocks and Shares ISA?",
        "What are the risks of your Stocks and Shares ISA?",
        "Is a Stocks and Shares ISA right for {amount} of savings?",
    ),
    "protection": (
        "Is my money safe with Harbourline?",
        "What happens to my savings if Harbourline goes bust?",
        "Are my savings in the {product} protected?",
        "Is the {product} covered by the FSCS?",
        "How much of my {amount} is protected if you fail?",
        "Is there any risk to money in my {product}?",
        "Are deposits with Harbourline insured?",
        "Would I get my savings back if the bank collapsed?",
        "If Harbourline failed, would my {product} be safe?",
        "Is {amount} in the {product} covered if something goes wrong?",
        "What protection do savers with Harbourline have?",
    ),
}
OPENERS = ("", "", "Hi, ", "Hello, ", "Quick question: ")
CLOSERS = ("", "", " Thanks.", " Thank you.")


def fund_list() -> str:
    """The funds as a list without the word "Fund": "Balanced, Global Growth and Income"."""
    names = [fund.removesuffix(" Fund") for fund in FUNDS]
    return ", ".join(names[:-1]) + " and " + names[-1]


@dataclass(frozen=True)
class Sheet:
    """One internal product sheet: a file of the corpus, one section per product or fact."""

    name: str  # the file's stem, so the passage ids are NAME#N
    title: str
    intro: str
    sections: tuple[tuple[str, str], ...]  # (heading, text)


# The account products of each sheet; every product the answers quote is on one.
ACCOUNT_SHEETS: dict[str, tuple[str, ...]] = {
    "savings-accounts": ("Easy Access Saver", "Regular Saver", "95-Day Notice Saver"),
    "fixed-rate-bonds": ("1-Year Fixed Rate Bond", "2-Year Fixed Rate Bond"),
}


def _bullets(*lines: str) -> str:
    return "\n".join(f"- {line}" for line in lines)


def _account_text(product: str) -> str:
    """An account's facts in internal wording: its rate and what leaving early costs."""
    lines = []
    if product in SAVINGS:
        rate, kind = SAVINGS[product]
        lines.append(f"Interest rate: {rate} a year, {kind}")
    if product in NOTICE:
        lines.append(f"Withdrawals: {NOTICE[product]} notice needed")
        lines.append(f"Withdrawing without notice: costs {EARLY_ACCESS[product]}")
    elif product in EARLY_ACCESS:
        lines.append(
            f"Withdrawing or closing early (before maturity): costs {EARLY_ACCESS[product]}"
        )
    return _bullets(*lines)


# Every sheet opens the same way; the facts are all in the sections.
INTRO = (
    "Internal product sheet for staff: the current terms, one section per product or fact. "
    "Updated whenever terms change."
)


def sheets() -> tuple[Sheet, ...]:
    """The product sheets, built from the tables the answers use."""
    cash_isa_rate, cash_isa_kind = SAVINGS["Cash ISA"]
    covered = list(dict.fromkeys([*SAVINGS, *EARLY_ACCESS]))  # every deposit product
    outside = "outside the deposit guarantee"
    return (
        Sheet(
            "savings-accounts",
            "Savings accounts",
            INTRO,
            tuple((p, _account_text(p)) for p in ACCOUNT_SHEETS["savings-accounts"]),
        ),
        Sheet(
            "fixed-rate-bonds",
            "Fixed-rate bonds",
            INTRO,
            tuple((p, _account_text(p)) for p in ACCOUNT_SHEETS["fixed-rate-bonds"]),
        ),
        Sheet(
            "isas",
            "ISAs",
            INTRO,
            (
                (
                    "ISA allowance",
                    _bullets(
                        f"Yearly limit: {ISA_ALLOWANCE} paid in per customer per tax year, in "
                        "total across all their ISAs (cash and stocks and shares, with us or "
                        "with other providers)",
                        f"Cash ISA interest rate: {cash_isa_rate} a year, {cash_isa_kind}",
                    ),
                ),
                ("Cash ISA", _bullets(f"Interest rate: {cash_isa_rate} a year, {cash_isa_kind}")),
                (
                    "Stocks and Shares ISA",
                    _bullets(
                        f"Funds it can hold: the {fund_list()} funds",
                        f"Platform fee: {PLATFORM_FEE} a year, on top of each fund's own "
                        "running costs",
                        f"Holdings are investments: prices move with the markets, {outside}",
                    ),
                ),
            ),
        ),
        Sheet(
            "funds",
            "Funds",
            INTRO,
            tuple(
                (
                    fund,
                    _bullets(
                        f"Yearly running costs: {cost} of the amount invested",
                        f"Price: moves with the markets, {outside}",
                    ),
                )
                for fund, cost in FUNDS.items()
            ),
        ),
        Sheet(
            "deposit-protection",
            "Deposit protection",
            INTRO,
            (
                (
                    "Deposit guarantee",
                    _bullets(
                        "The government-backed deposit guarantee covers up to "
                        f"{PROTECTION_LIMIT} per person if Harbourline fails",
                        f"Accounts it covers: {', '.join(covered)}",
                        "Not covered: the funds and the Stocks and Shares ISA",
                    ),
                ),
            ),
        ),
    )


def markdown(sheet: Sheet) -> str:
    """One sheet's file: the title and intro, then a section per product or fact."""
    parts = [f"# {sheet.title}", sheet.intro]
    for heading, text in sheet.sections:
        parts += [f"## {heading}", text]
    return "\n\n".join(parts) + "\n"
