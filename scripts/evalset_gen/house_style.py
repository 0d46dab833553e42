"""house-style: rewrite company text into Fernhill's house style.

Templates are written in house style; each marker renders either in house
style (the ideal) or as a typical violation (the input), so the ideal and the
input always differ by exactly the violations listed in the row's metadata.
"""

from __future__ import annotations

import random
import re

from .common import FIRST_NAMES, Candidate, Split, build_split, holdout, number_words

NAME = "house-style"
PREFIX = "hs"
DOC_TYPES = ("release_note", "announcement", "customer_email", "help_article", "team_memo")

SYSTEM = """Rewrite the text in Fernhill's house style. Change only what the rules require and keep everything else, including line breaks, as it is.
1. US spelling (color, organize, center, canceled, catalog, favorite, license).
2. Say "customer", never "client".
3. Use numerals for all numbers, including 1 to 9.
4. Use the Oxford comma in lists of three or more.
5. No exclamation marks: end sentences with a period.
6. Headings in sentence case: capitalize only the first word and proper nouns.
7. Short sentences: where two sentences are joined with ", and", split them into two.
8. Plain words: "use" not "utilize", "before" not "prior to", "to" not "in order to", "start" not "commence", "help" not "assist", "about" not "approximately", "because" not "due to the fact that".
Reply with the rewritten text only."""

# house style -> (violation, rule)
WORDS: dict[str, tuple[str, str]] = {
    "color": ("colour", "us_spelling"),
    "colors": ("colours", "us_spelling"),
    "organize": ("organise", "us_spelling"),
    "center": ("centre", "us_spelling"),
    "canceled": ("cancelled", "us_spelling"),
    "catalog": ("catalogue", "us_spelling"),
    "favorite": ("favourite", "us_spelling"),
    "prioritize": ("prioritise", "us_spelling"),
    "analyzed": ("analysed", "us_spelling"),
    "customize": ("customise", "us_spelling"),
    "recognize": ("recognise", "us_spelling"),
    "license": ("licence", "us_spelling"),
    "behavior": ("behaviour", "us_spelling"),
    "use": ("utilize", "plain_words"),
    "before": ("prior to", "plain_words"),
    "to": ("in order to", "plain_words"),
    "start": ("commence", "plain_words"),
    "help": ("assist", "plain_words"),
    "about": ("approximately", "plain_words"),
    "because": ("due to the fact that", "plain_words"),
}
CUSTOMER = {
    "customer": "client",
    "customers": "clients",
    "Customer": "Client",
    "Customers": "Clients",
}
LISTS: dict[str, tuple[str, ...]] = {
    "formats": ("PDF", "CSV", "Excel", "JSON", "QuickBooks files"),
    "platforms": ("iOS", "Android", "the web", "Windows", "macOS"),
    "regions": ("Europe", "North America", "Asia", "Australia", "South America"),
    "channels": ("email", "chat", "phone", "the help center"),
    "records": ("invoices", "receipts", "bank statements", "payroll reports", "tax forms"),
    "months": ("January", "February", "March", "April", "May", "June"),
    "tools": ("Zendesk", "Slack", "Notion", "the CRM"),
    "teams": ("support", "sales", "finance", "operations", "marketing"),
}
PLAIN = {
    "product": ("Fernhill Ledger", "Fernhill Pay", "Fernhill Desk"),
    "city": ("Leeds", "Denver", "Lisbon", "Toronto", "Austin", "Dublin"),
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"),
    "month": ("March", "April", "June", "September", "October", "November"),
    "version": ("4.2", "4.3", "5.0", "5.1", "3.9"),
    "amount": ("$49.00", "$18.50", "$120.00", "$9.99", "$310.40"),
    "plan": ("Standard plan", "Team plan", "Plus plan"),
}
# Words that keep their capital when a sentence is joined onto the one before.
PROPER = {"I", "Fernhill"} | {
    word
    for pool in (*LISTS.values(), *PLAIN.values())
    for item in pool
    for word in item.split()
    if word[0].isupper()
}
SMALL = {
    "a",
    "an",
    "the",
    "and",
    "or",
    "of",
    "to",
    "in",
    "on",
    "for",
    "at",
    "by",
    "with",
    "from",
    "into",
}

HEADINGS: dict[str, tuple[str, ...]] = {
    "release_note": (
        "What's new in {product} {version}",
        "Faster exports and a new {color} picker",
        "Improvements to bank sync in {product}",
        "Better search for receipts",
        "New reports for small teams",
        "Changes to recurring invoices",
        "A simpler way {to} {organize} receipts",
    ),
    "announcement": (
        "Our office is moving to {city}",
        "Meet our {customer} success team",
        "Holiday opening hours for {month}",
        "{product} is now available in {n:3-9} new countries",
        "A new home for the {customer} community",
        "Changes to our support hours",
    ),
    "help_article": (
        "How {to} {organize} receipts into folders",
        "Set up bank sync in {product}",
        "Export your data from {product}",
        "Pin your {favorite} reports",
        "Invite your accountant",
        "Fix a failed payment",
        "Change the {color} of a category",
    ),
}
SENTENCES: dict[str, tuple[str, ...]] = {
    "release_note": (
        "This release adds {n:2-9} new report templates.",
        "You can now export statements as {list:formats}.",
        "We fixed {n:3-20} bugs that affected {customers} on {list:platforms}.",
        "Bank sync now runs every {n:2-8} hours.",
        "The new dashboard lets you {customize} the {color} of each category.",
        "Search results now load in under {n:2-5} seconds.",
        "{Customers} with more than {n:20-90} invoices will see the biggest speed-up.",
        "This update is rolling out to {list:regions} over the next {n:2-9} days.",
        "Invoices that were {canceled} by mistake can now be restored for {n:7-30} days.",
        "The {catalog} page now shows prices in {n:3-9} currencies.",
        "Exports now keep the {colors} you set for each label.",
        "We changed the sync {behavior} {because} {customers} asked for fewer duplicates.",
    ),
    "announcement": (
        "We are excited to share that Fernhill now has {n:2-9} offices.",
        "Our support team will be available by {list:channels} from {day}.",
        "Thank you to the {n:20-90} {customers} who joined our beta.",
        "We will {start} the move on {day} and expect it to take {n:2-5} days.",
        "During the move, {customers} can still reach us by {list:channels}.",
        "Our new {center} in {city} has room for {n:20-60} people.",
        "The team will {prioritize} requests from {customers} with payroll deadlines.",
        "We hired {n:3-12} new support agents this quarter.",
        "Please update your bookmarks {before} {month} {n:2-28}.",
        "Our {customer} community now has {n:11-40} local groups.",
        "The new office is {about} {n:5-15} minutes from the train station.",
    ),
    "customer_email": (
        "Thank you for contacting Fernhill support.",
        "Your refund of {amount} was processed today and should arrive within {n:3-10} business days.",
        "We have {canceled} the duplicate invoice on your account.",
        "I have attached your invoices for {list:months}.",
        "Your {license} covers {n:2-12} users on the {plan}.",
        "We can {help} you with the move {before} the end of {month}.",
        "Our records show that {n:2-9} payments failed last week.",
        "If you have any questions, reply to this email and we will {help}.",
        "We {analyzed} the logs and found the cause of the sync error.",
        "I {recognize} this has been frustrating for your team.",
        "You can download statements as {list:formats} from the Reports tab.",
        "Your account manager will call you on {day} {to} review the setup.",
        "As a {customer} on the {plan}, you get {n:2-6} free training sessions.",
    ),
    "help_article": (
        "Open Settings and select Integrations.",
        "You can connect up to {n:2-10} bank accounts on the {plan}.",
        "Each folder can hold up to {n:20-99} receipts.",
        "Choose a {color} for each folder {to} find it faster.",
        "Files must be smaller than {n:5-25} MB.",
        "Reports can be saved as {list:formats}.",
        "{use} filters {to} find transactions from the last {n:2-12} months.",
        "Your accountant gets read access to {list:records}.",
        "Mark a report as a {favorite} {to} pin it to the dashboard.",
        "If a payment fails, we retry it {n:2-4} times over {n:3-7} days.",
        "{Customers} on the Team plan can add up to {n:10-50} users.",
        "Changes take {about} {n:2-15} minutes to show in the app.",
    ),
    "team_memo": (
        "Please {prioritize} tickets from {customers} on the Team plan this week.",
        "We closed {n:20-99} tickets yesterday.",
        "The {catalog} of saved replies now has {n:10-40} entries.",
        "Remember to log every call in {list:tools}.",
        "Our {center} in {city} will handle overflow on {day}.",
        "{Customers} asked about the new pricing {n:12-60} times last week.",
        "Please review the new refund policy {before} {day}.",
        "The rota now covers {list:teams}.",
        "We {analyzed} {n:30-90} survey replies from {customers}.",
        "Average first response time fell to {n:2-9} hours.",
        "{use} the new macro {to} answer questions about {license} upgrades.",
        "We will {start} the training sessions on {day}.",
    ),
}
GREETED = {
    "customer_email": ("Hi {name},", "Hello {name},"),
    "team_memo": ("Hi team,", "Hello all,"),
}
SIGN_OFFS = ("Best regards,\n{agent}", "Kind regards,\n{agent}", "Thanks,\n{agent}")
MARKER = re.compile(r"\{([^}]+)\}")


class _Render:
    """Renders templates into (house style, input) pairs and counts violations."""

    def __init__(self, rng: random.Random, p: float) -> None:
        self.rng, self.p = rng, p
        self.violations: list[str] = []

    def _violate(self, rule: str) -> bool:
        if self.rng.random() < self.p:
            self.violations.append(rule)
            return True
        return False

    def marker(self, key: str) -> tuple[str, str]:
        rng = self.rng
        if key.startswith("n:"):
            lo, hi = map(int, key[2:].split("-"))
            n = rng.randint(lo, hi)
            return str(n), number_words(n) if self._violate("numerals") else str(n)
        if key.startswith("list:"):
            items = rng.sample(LISTS[key[5:]], rng.choice((3, 3, 4)))
            head = ", ".join(items[:-1])
            clean = f"{head}, and {items[-1]}"
            return clean, f"{head} and {items[-1]}" if self._violate("oxford_comma") else clean
        if key in CUSTOMER:
            return key, CUSTOMER[key] if self._violate("customer_not_client") else key
        if key.lower() in WORDS:
            bad, rule = WORDS[key.lower()]
            if key[0].isupper():
                bad = bad.capitalize()
            return key, bad if self._violate(rule) else key
        value = rng.choice(PLAIN[key])
        return value, value

    def text(self, template: str) -> tuple[str, str]:
        clean, raw, pos = [], [], 0
        for m in MARKER.finditer(template):
            clean.append(template[pos : m.start()])
            raw.append(template[pos : m.start()])
            c, r = self.marker(m.group(1))
            clean.append(c)
            raw.append(r)
            pos = m.end()
        clean.append(template[pos:])
        raw.append(template[pos:])
        return "".join(clean), "".join(raw)


def _title_case(heading: str) -> str:
    words = heading.split(" ")
    return " ".join(
        w if (i and w.lower() in SMALL) or not w[:1].isalpha() else w[0].upper() + w[1:]
        for i, w in enumerate(words)
    )


def _lower_first(sentence: str) -> str:
    first = sentence.split(" ")[0].strip(",.")
    if first in PROPER or first.isupper():
        return sentence
    return sentence[0].lower() + sentence[1:]


def _capitalize_templates(pool: tuple[str, ...]) -> tuple[str, ...]:
    # A sentence may open with a marker ({use}, {Customers}): capitalize it.
    return tuple(
        "{" + t[1:2].upper() + t[2:]
        if t.startswith("{") and t[1:2].islower() and t[1:3] != "n:"
        else t
        for t in pool
    )


def _document(
    doc_type: str, headings: list[str], sentences: list[str], rng: random.Random
) -> Candidate:
    for _ in range(50):
        r = _Render(rng, p=rng.choice((0.4, 0.6, 0.8)))
        clean_parts, raw_parts = [], []
        if doc_type in GREETED:
            name = rng.choice(FIRST_NAMES)
            greeting = rng.choice(GREETED[doc_type]).format(name=name)
            clean_parts.append(greeting)
            raw_parts.append(greeting[:-1] + "!" if r._violate("no_exclamation") else greeting)
        if headings:
            clean_h, raw_h = r.text(rng.choice(headings))
            clean_parts.append(clean_h)
            raw_parts.append(_title_case(raw_h) if r._violate("sentence_case_headings") else raw_h)
        picked = [r.text(t) for t in rng.sample(sentences, rng.randint(2, min(4, len(sentences))))]
        clean_body = " ".join(c for c, _ in picked)
        raw_body, i = [], 0
        while i < len(picked):
            raw = picked[i][1]
            if i + 1 < len(picked) and r._violate("short_sentences"):
                raw = raw[:-1] + ", and " + _lower_first(picked[i + 1][1])
                i += 1
            if r.rng.random() < 0.3 and r._violate("no_exclamation"):
                raw = raw[:-1] + rng.choice(("!", "!", "!!"))
            raw_body.append(raw)
            i += 1
        clean_parts.append(clean_body)
        raw_parts.append(" ".join(raw_body))
        if doc_type == "customer_email":
            sign = rng.choice(SIGN_OFFS).format(agent=rng.choice(FIRST_NAMES) + " at Fernhill")
            clean_parts.append(sign)
            raw_parts.append(sign)
        clean, raw = "\n\n".join(clean_parts), "\n\n".join(raw_parts)
        if len(r.violations) >= 2 and clean != raw:
            meta = {"doc_type": doc_type, "violations": sorted(set(r.violations))}
            return Candidate(raw, clean, doc_type, meta)
    raise RuntimeError(f"could not render a {doc_type} with violations")


def build(rng: random.Random, n_eval: int = 80, n_train: int = 200) -> Split:
    pools = {k: _capitalize_templates(v) for k, v in SENTENCES.items()}
    eval_sent, train_sent = holdout(rng, pools)
    eval_head, train_head = holdout(rng, HEADINGS)

    def make(doc_type: str, index: int, is_eval: bool) -> Candidate:
        heads = (eval_head if is_eval else train_head).get(doc_type, [])
        sents = (eval_sent if is_eval else train_sent)[doc_type]
        return _document(doc_type, heads, sents, rng)

    return build_split(make, DOC_TYPES, n_eval, n_train, rng)


YAML = """\
name: house-style
description: >-
  Rewrites release notes, announcements, help articles, customer emails and team
  memos into Fernhill's house style (US spelling, "customer" not "client", numerals,
  Oxford comma, no exclamation marks, sentence-case headings, short sentences, plain
  words). Each input breaks two or more rules and the ideal is the same text with
  only those fixes, so a model must edit precisely without rewriting freely. Scored
  by overlap with the ideal and by a hard check that no "!" survives.
data: eval.jsonl
train: train.jsonl
generation:
  max_tokens: 320
  temperature: 0
scorers:
  - name: chrf
  - name: rouge-l
  - name: regex
    options: {pattern: "^[^!]*$"}
"""


def yaml_text() -> str:
    return YAML
