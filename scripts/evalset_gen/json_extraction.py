"""json-extraction: pull order details out of short wholesale-customer emails."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

from .common import (
    FIRST_NAMES,
    LAST_NAMES,
    Candidate,
    Split,
    add_typos,
    build_split,
    holdout,
    number_words,
)

NAME = "json-extraction"
PREFIX = "je"
INTENTS = ("place_order", "change_order", "cancel_order", "return_request", "delivery_inquiry")

# canonical name, unit (singular, plural), ways customers write it
CATALOG: tuple[tuple[str, tuple[str, str], tuple[str, ...]], ...] = (
    ("House Espresso 1kg", ("bag", "bags"), ("House Espresso", "house espresso beans", "the house espresso")),
    ("Decaf Espresso 1kg", ("bag", "bags"), ("decaf espresso", "Decaf Espresso", "the decaf")),
    ("Colombia Filter 1kg", ("bag", "bags"), ("Colombia filter", "Colombian filter coffee")),
    ("Ethiopia Filter 1kg", ("bag", "bags"), ("Ethiopia filter", "Ethiopian filter beans")),
    ("Oat Milk 6-pack", ("case", "cases"), ("oat milk", "Oat Milk", "oat")),
    ("Chai Syrup 1L", ("bottle", "bottles"), ("chai syrup", "Chai syrup")),
    ("Vanilla Syrup 1L", ("bottle", "bottles"), ("vanilla syrup", "vanilla")),
    ("Paper Cups 12oz", ("box", "boxes"), ("12oz cups", "12oz paper cups", "12 oz paper cups")),
    ("Compostable Lids", ("box", "boxes"), ("lids", "compostable lids")),
    ("Descaling Tablets", ("tub", "tubs"), ("descaling tablets", "descaler tablets")),
)  # fmt: skip

SYSTEM = (
    "You read emails sent to Kestrel Coffee Supply, a wholesale coffee supplier, and "
    "extract the order details as a JSON object with exactly these keys:\n"
    "- customer_name: the sender's name as written (full name if given)\n"
    "- company: the sender's business, or null if not mentioned\n"
    "- email: the sender's email address, or null\n"
    "- phone: the sender's phone number exactly as written, or null\n"
    "- order_id: the existing order number written as ORD-12345, or null\n"
    "- intent: one of place_order, change_order, cancel_order, return_request, delivery_inquiry\n"
    '- items: list of {"product": catalog name, "quantity": integer} being ordered, changed '
    "or returned; [] if none\n"
    "- delivery_date: the delivery date the customer asks for, as YYYY-MM-DD (all dates are "
    "in 2025), or null\n"
    "Catalog: " + "; ".join(c[0] for c in CATALOG) + ".\n"
    "Reply with compact JSON only."
)

BODIES: dict[str, tuple[str, ...]] = {
    "place_order": (
        "We'd like to place an order for {items}{date_clause}.",
        "Could you send us {items}{date_clause}?",
        "Please put through a new order:\n{items_block}{date_sentence}",
        "Time to restock. We need {items}{date_clause}.",
        "Can I order {items} for the shop?{date_sentence}",
        "I'd like to order {items}.{date_sentence}",
        "Running low here, so please send {items}{date_clause}.",
        "First order from us! We'd like {items}{date_clause}.",
        "Hoping to get {items} from you{date_clause}. Invoice us as usual.",
    ),
    "change_order": (
        "Can we change order {oid}? Please make it {items} instead.{date_sentence}",
        "Quick change to {oid}: we need {items}, not what we put originally.",
        "Please update order {oid} to {items}.",
        "Could you add {items} to order {oid}?{date_sentence}",
        "On {oid}, please change the quantities to {items}.",
        "Can you move the delivery for {oid} to {date}? Nothing else changes.",
        "Sorry, small correction on {oid}: it should be {items}.{date_sentence}",
        "We underestimated last time. For {oid} can you bump it up to {items}?",
    ),
    "cancel_order": (
        "Please cancel order {oid}, we ordered twice by mistake.",
        "We need to cancel {oid}. We're closing for renovations next month.",
        "Could you cancel our order {oid}? Sorry for the hassle.",
        "Cancel {oid} please, our budget got cut this month.",
        "Hold on, please cancel {oid} before it ships.",
        "We won't need {oid} after all, can you cancel it?",
        "Please scrap {oid} entirely. We found stock in the back room.",
        "Our manager asked me to cancel {oid}. Let me know once it's done.",
    ),
    "return_request": (
        "We received {items} on order {oid} but they arrived damaged. Can we send them back?",
        "I'd like to return {items} from {oid}, we ordered the wrong thing.",
        "Order {oid} came with {items} that we never asked for. How do we return them?",
        "Can we return {items}? They came in {oid} and are past the best-before date.",
        "The {items} from {oid} were leaking when they arrived, please arrange a return.",
        "We'd like to send back {items} (order {oid}). The seals were broken.",
        "Is it possible to return {items}? Unopened, from {oid}.",
        "Two weeks ago we got {oid}. We'd like to return {items}, they don't suit our machine.",
    ),
    "delivery_inquiry": (
        "Any update on when {oid} will arrive?{need}",
        "Our order {oid} hasn't shown up yet.{need}",
        "Could you check the delivery status of {oid}?{need}",
        "The tracking for {oid} hasn't moved in days.{need}",
        "Is {oid} still on the van today?{need}",
        "Just checking where {oid} is, the driver hasn't been.{need}",
        "Has {oid} been dispatched yet? Nobody has been in touch.{need}",
        "We were told {oid} would come yesterday but nothing arrived.{need}",
    ),
}
DATE_CLAUSES = (" for delivery by {date}", " delivered on {date}", ", ideally arriving {date}")
DATE_SENTENCES = (
    " We need it by {date}.",
    " Delivery on {date} would be perfect.",
    " Please deliver on {date}.",
)
NEEDS = (
    " We need it by {date}.",
    " We really need it before {date}.",
    " Our event is on {date} so it has to be there by then.",
)
SUBJECTS = {
    "place_order": ("New order", "Order for next week", "Restock"),
    "change_order": ("Change to our order", "Re: {oid}", "Order amendment"),
    "cancel_order": ("Cancel order", "Re: {oid}", "Cancellation"),
    "return_request": ("Return", "Damaged items", "Re: {oid}"),
    "delivery_inquiry": ("Where is our delivery?", "Delivery status", "Re: {oid}"),
}
GREETINGS = ("Hi Kestrel team,", "Hello,", "Hi there,", "Good morning,", "Hey folks,", "Hi all,")
CLOSINGS = ("Thanks,", "Many thanks,", "Best,", "Cheers,", "Kind regards,", "Thank you,")
ROLES = ("Owner", "Office Manager", "Head Barista", "Operations", "Purchasing", "Café Manager")
PLACES = (
    "Bluebird", "Alder Street", "Harbor & Pine", "Copper Kettle", "Northgate", "Little Fern",
    "Marlow", "Juniper", "Eastside", "Foxglove", "Riverbend", "Saltmarsh", "Oakhurst",
    "Wren", "Lantern", "Granary", "Meridian", "Kiln", "Brightwater", "Thistle",
)  # fmt: skip
KINDS = ("Café", "Coffee House", "Bakery", "Dental", "Coworking", "Studio", "Books", "Yoga", "Deli")
FREE_MAIL = ("gmail.com", "outlook.com", "yahoo.co.uk", "hotmail.com")
START = dt.date(2025, 1, 6)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _date(rng: random.Random) -> tuple[str, str]:
    day = START + dt.timedelta(days=rng.randrange(340))
    month, short = day.strftime("%B"), day.strftime("%b")
    text = rng.choice(
        (
            f"{day.strftime('%A')}, {month} {day.day}",
            f"{month} {day.day}",
            f"{day.day} {month}",
            f"{month} {_ordinal(day.day)}",
            f"the {_ordinal(day.day)} of {month}",
            f"{short} {day.day}",
            f"{day.strftime('%a')} {day.day} {month}",
        )
    )
    return text, day.isoformat()


def _items(rng: random.Random) -> tuple[list[dict[str, Any]], str, str]:
    """Returns the ideal item list, an inline phrase and a bulleted block."""
    chosen = rng.sample(CATALOG, rng.choice((1, 1, 2, 2, 3)))
    ideal, phrases, lines = [], [], []
    for canonical, (unit, units), aliases in chosen:
        qty = rng.choice((1, 2, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 24))
        ideal.append({"product": canonical, "quantity": qty})
        alias = rng.choice(aliases)
        count = number_words(qty) if qty <= 12 and rng.random() < 0.5 else str(qty)
        if qty == 1:
            count, units = rng.choice(("a", "one", "1")), unit
        phrases.append(
            rng.choice(
                (
                    f"{count} {units} of {alias}",
                    f"{qty} x {canonical}",
                    f"{alias} ({count} {units})",
                )
            )
        )
        lines.append(
            rng.choice(
                (f"- {qty} x {canonical}", f"- {alias}: {qty}", f"* {count} {units} {alias}")
            )
        )
    inline = (
        phrases[0]
        if len(phrases) == 1
        else ", ".join(phrases[:-1]) + rng.choice((" and ", ", and ", " plus ")) + phrases[-1]
    )
    return ideal, inline, "\n".join(lines)


def _accounts(rng: random.Random, count: int) -> list[dict[str, Any]]:
    accounts: list[dict[str, Any]] = []
    used: set[str] = set()
    while len(accounts) < count:
        business = rng.random() < 0.8
        company = f"{rng.choice(PLACES)} {rng.choice(KINDS)}" if business else None
        key = company or "person"
        if company and key in used:
            continue
        used.add(key)
        contacts = []
        for _ in range(rng.choice((1, 2)) if business else 1):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            local = rng.choice((first, f"{first}.{last}", f"{first[0]}{last}")).lower()
            local = local.replace("'", "").replace("ü", "ue").replace("ë", "e")
            if company:
                domain = "".join(ch for ch in company.lower() if ch.isalnum()).replace("é", "e")
                domain += rng.choice((".com", ".co.uk", ".com"))
            else:
                domain = rng.choice(FREE_MAIL)
            area = rng.randint(201, 989)
            phone = rng.choice(
                (
                    f"({area}) 555-{rng.randint(100, 199):04d}",
                    f"{area}-555-{rng.randint(100, 199):04d}",
                    f"+44 20 7946 {rng.randint(0, 999):04d}",
                    f"07700 900{rng.randint(0, 999):03d}",
                )
            )
            contacts.append(
                {
                    "first": first,
                    "last": last,
                    "email": f"{local}@{domain}",
                    "phone": phone,
                    "role": rng.choice(ROLES),
                }
            )
        accounts.append(
            {"company": company, "contacts": contacts, "id": company or f"{first} {last}"}
        )
    return accounts


def _email(
    intent: str, account: dict[str, Any], bodies: list[str], rng: random.Random
) -> tuple[str, dict[str, Any]]:
    contact = rng.choice(account["contacts"])
    company = account["company"]
    items, inline, block = _items(rng)
    date_text, date_iso = _date(rng)
    number = rng.randint(10000, 99999)
    style = rng.choice(("ORD-{}", "#ORD-{}", "order number {}", "ord-{}", "ORD-{}"))
    oid = style.format(number)
    body = rng.choice(bodies)
    wants_date = (intent in ("place_order", "change_order") and rng.random() < 0.6) or (
        intent == "delivery_inquiry" and rng.random() < 0.5
    )
    if "{date}" in body:
        wants_date = True
    slots = {
        "items": inline,
        "items_block": block,
        "oid": oid,
        "date": date_text,
        "date_clause": rng.choice(DATE_CLAUSES).format(date=date_text) if wants_date else "",
        "date_sentence": rng.choice(DATE_SENTENCES).format(date=date_text) if wants_date else "",
        "need": rng.choice(NEEDS).format(date=date_text) if wants_date else "",
    }
    if intent == "delivery_inquiry" and rng.random() < 0.2:
        body = body.replace("order {oid}", "order from last week")
        body, number = body.replace("{oid}", "our order from last week"), 0
    if rng.random() < 0.15:
        body = add_typos(body, rng, 1)
    has_date = (
        any(f"{{{k}}}" in body for k in ("date", "date_clause", "date_sentence", "need"))
        and wants_date
    )
    text_body = body.format(**slots)
    if "{items" not in body:
        items = []

    full_name = rng.random() < 0.75
    name = f"{contact['first']} {contact['last']}" if full_name else contact["first"]
    show_company = company is not None and rng.random() < 0.8
    show_email, show_phone = rng.random() < 0.5, rng.random() < 0.4
    parts = []
    if rng.random() < 0.5:
        parts.append(
            "Subject: " + rng.choice(SUBJECTS[intent]).format(oid=oid if number else "our order")
        )
    parts.append(rng.choice(GREETINGS))
    intro = show_company and rng.random() < 0.4
    if intro:
        parts.append(f"This is {contact['first']} from {company}. {text_body}")
    else:
        parts.append(text_body)
    phone_inline = show_phone and rng.random() < 0.5
    if phone_inline:
        parts[-1] += rng.choice(
            (
                " You can reach me on {p} if anything's unclear.",
                " Call {p} if the driver can't find us.",
            )
        ).format(p=contact["phone"])
    sig = [name]
    if show_company and not intro and rng.random() < 0.5:
        sig.append(f"{contact['role']}, {company}")
    elif show_company and not intro:
        sig.append(company)
    if show_email:
        sig.append(contact["email"])
    if show_phone and not phone_inline:
        sig.append(rng.choice(("", "Tel: ", "Mobile: ")) + contact["phone"])
    signature = "\n".join(sig) if rng.random() < 0.7 else " | ".join(sig)
    text = "\n\n".join(parts) + "\n\n" + rng.choice(CLOSINGS) + "\n" + signature
    ideal = {
        "customer_name": name,
        "company": company if show_company else None,
        "email": contact["email"] if show_email else None,
        "phone": contact["phone"] if show_phone else None,
        "order_id": f"ORD-{number}" if number and "{oid}" in body else None,
        "intent": intent,
        "items": items,
        "delivery_date": date_iso if has_date else None,
    }
    return text, ideal


def build(rng: random.Random, n_eval: int = 80, n_train: int = 200) -> Split:
    # Five emails per account; eval and train accounts are disjoint.
    accounts = _accounts(rng, (n_eval + n_train) // 5)
    eval_accounts, train_accounts = accounts[: n_eval // 5], accounts[n_eval // 5 :]
    eval_bodies, train_bodies = holdout(rng, BODIES)

    def make(intent: str, index: int, is_eval: bool) -> Candidate:
        pool = eval_accounts if is_eval else train_accounts
        account = pool[index % len(pool)]
        text, ideal = _email(
            intent, account, (eval_bodies if is_eval else train_bodies)[intent], rng
        )
        meta = {
            "account": account["id"],
            "intent": intent,
            "n_items": len(ideal["items"]),
            "has_order_id": ideal["order_id"] is not None,
        }
        return Candidate(
            text, json.dumps(ideal, ensure_ascii=False, separators=(",", ":")), intent, meta
        )

    return build_split(make, INTENTS, n_eval, n_train, rng)


def schema() -> dict[str, Any]:
    nullable = {"type": ["string", "null"]}
    item = {
        "type": "object",
        "additionalProperties": False,
        "required": ["product", "quantity"],
        "properties": {
            "product": {"enum": [c[0] for c in CATALOG]},
            "quantity": {"type": "integer", "minimum": 1},
        },
    }
    properties = {
        "customer_name": {"type": "string", "minLength": 1},
        "company": nullable,
        "email": {**nullable, "pattern": "^[^@\\s]+@[^@\\s]+\\.[a-z.]+$"},
        "phone": nullable,
        "order_id": {**nullable, "pattern": "^ORD-[0-9]{5}$"},
        "intent": {"enum": list(INTENTS)},
        "items": {"type": "array", "items": item},
        "delivery_date": {**nullable, "pattern": "^2025-[01][0-9]-[0-3][0-9]$"},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Order details extracted from a customer email",
        "type": "object",
        "additionalProperties": False,
        "required": list(properties),
        "properties": properties,
    }


def write_extras(folder: Path) -> None:
    text = json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"
    (folder / "schema.json").write_text(text, encoding="utf-8")


YAML = """\
name: json-extraction
description: >-
  Extracts order details (sender, company, contact details, order number, intent,
  line items with catalog names and quantities, requested delivery date) from short
  emails to a wholesale coffee supplier, as one JSON object. It checks that a model
  returns valid JSON that follows schema.json, normalises order numbers, product
  names, quantities and dates, and writes null for what the email does not say.
  Emails are clustered by customer account.
data: eval.jsonl
train: train.jsonl
cluster: account
# The answers' schema: the json scorer checks it; `-p schema` decodes under it.
schema: schema.json
generation:
  max_tokens: 256
  temperature: 0
scorers:
  - name: json
  - name: json
    id: json-fields
    options: {match_fields: true, schema: false}
"""


def yaml_text() -> str:
    return YAML
