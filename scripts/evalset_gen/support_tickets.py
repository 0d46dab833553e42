"""support-tickets: classify short customer messages into 8 labels."""

from __future__ import annotations

import random
from typing import Any

from .common import (
    FIRST_NAMES,
    LAST_NAMES,
    Candidate,
    Split,
    add_typos,
    build_split,
    holdout,
)

NAME = "support-tickets"
PREFIX = "st"
LABELS = (
    "billing",
    "refund",
    "login_access",
    "bug_report",
    "feature_request",
    "shipping",
    "cancellation",
    "account_update",
)
CHANNELS = ("email", "chat", "web_form", "social")

SYSTEM = """You are the ticket router for Homebase, a smart-home company (devices, the Homebase app and subscription plans).
Classify the customer's message into exactly one label:
- billing: charges, invoices, receipts, prices, payment methods (no request for money back)
- refund: the customer wants money back
- login_access: cannot sign in, passwords, two-factor codes, locked accounts
- bug_report: a device or the app misbehaves, crashes or shows errors
- feature_request: asks for something new the product does not do yet
- shipping: order delivery, tracking, couriers, delivery addresses, damaged parcels
- cancellation: ending a subscription, closing an account or cancelling an order
- account_update: changing profile details such as email, name, phone or account owner
Answer with the label only."""

PRODUCTS = (
    "Drift thermostat", "Halo video doorbell", "Orbit indoor camera", "Pulse smart plug",
    "Lumen bulb starter kit", "Aero air purifier", "Tide leak sensor", "Beacon motion sensor",
    "Vista outdoor camera", "Chime door sensor",
)  # fmt: skip
PLANS = ("Plus", "Premium", "Family", "Pro Monitoring", "Basic")
DEVICES = (
    "iPhone 15", "Pixel 8", "Galaxy S23", "iPad", "Android tablet", "Chrome on Windows",
    "Safari on my Mac", "iPhone 12", "OnePlus phone", "Fire tablet",
)  # fmt: skip
CARRIERS = ("UPS", "FedEx", "USPS", "DHL", "the courier")
CITIES = ("Denver", "Leeds", "Toronto", "Austin", "Dublin", "Phoenix", "Glasgow", "Memphis")
COUNTRIES = ("Canada", "Ireland", "Mexico", "Australia", "Norway", "Portugal")
MONTHS = ("January", "February", "March", "April", "May", "June", "September", "October")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "yesterday", "last week")
RELATIONS = ("husband", "wife", "partner", "daughter", "son", "landlord", "business partner")
COMPANIES = ("Maple Lane Rentals", "Cobalt Dental", "Riverside Lofts", "Ardent Studio")

CORE: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged {amount} twice on my card this month for the {plan} plan.",
        "Why did my {plan} subscription go up to {amount} this month?",
        "Can I get an invoice with our company name on it for order {order}?",
        "My card ending in {last4} was declined but there's money on it, can you check the payment?",
        "How do I change the credit card you bill for my {plan} plan?",
        "There's a charge of {amount} from Homebase on my statement that I don't recognize.",
        "I need a VAT receipt for my last payment of {amount}.",
        "Is it possible to switch from monthly to annual billing on {plan}?",
        "The invoice for {month} shows {amount} but my plan should be cheaper than that.",
        "Can you explain the {amount} service fee on my latest invoice?",
        "I want to pay by PayPal instead of card from next month.",
        "My bill says {plan} but I'm pretty sure I'm on {plan2}, what am I paying for?",
        "Where can I download past invoices for my account?",
        "The promo code {code} wasn't applied to my last payment.",
        "Autopay failed in {month} and now I have a late payment notice, what do I owe?",
        "Do you charge sales tax on the {plan} plan? My receipt doesn't show it.",
    ),
    "refund": (
        "I'd like a refund for the {product} I sent back on {date}.",
        "Please refund the {amount} I paid for order {order}, the item never worked.",
        "I returned my {product} two weeks ago and still haven't got my money back.",
        "Can I get my money back for the {plan} plan? I only used it for {n} days.",
        "How long does a refund take to show up on my card?",
        "You approved my refund for order {order} but the {amount} isn't in my account yet.",
        "The {product} arrived broken and I just want a refund, not a replacement.",
        "I was promised a partial refund of {amount} for the late delivery, where is it?",
        "Requesting a full refund for order {order} under your 30-day guarantee.",
        "My refund went to an old card that's closed now, can you reissue it?",
        "I want to send the {product} back and get my money back, how do I start?",
        "Still waiting on the refund for case {case} from last month.",
        "Please refund the extra {product} I bought by accident.",
        "I'd like my {amount} back, the {product} doesn't fit our door.",
    ),
    "login_access": (
        "I can't log in to the Homebase app, it keeps saying my password is wrong.",
        "The password reset email never arrives at {email}.",
        "I'm locked out after too many attempts, how long until I can sign in again?",
        "I got a new phone and lost my two-factor codes, now I can't get into my account.",
        "The verification code you text me expires before I can even type it in.",
        "Sign in with Google just spins forever on my {device}.",
        "It says 'user not found' when I try to log in with {email}.",
        "Every time I sign in on my {device} it logs me straight back out.",
        "How do I reset my password if I can't access my old email anymore?",
        "The login page keeps telling me my session expired and won't let me in.",
        "My username stopped working after the new login screen, I can't get in.",
        "My {relation} can't sign in to our shared household account.",
        "The 2FA approval never shows up on my phone so I can't log in.",
        "I forgot my password and the reset link says it's invalid.",
    ),
    "bug_report": (
        "The {product} keeps showing offline in the app even though the wifi is fine.",
        "The app crashes as soon as I open the camera view on my {device}.",
        "Schedules for my {product} don't run at the right time since the last update.",
        "When I tap Export history I get error code {errcode}.",
        "Notifications show the wrong room name for my {product}.",
        "The temperature graph has been blank for the last {n} days.",
        "After updating to version {version} the {product} won't pair anymore.",
        "The dark mode setting resets every time I restart the app.",
        "Motion alerts from the {product} arrive about {n} minutes late.",
        "The battery level for my {product} shows 0% but it's brand new.",
        "The Homebase widget on my {device} says loading forever.",
        "Live view freezes after a few seconds on my {device}.",
        "Automations fire twice, so the lights turn on and then straight off again.",
        "The app just shows a blank white screen after the logo on my {device}.",
        "The {product} reboots itself every night around {hour}.",
    ),
    "feature_request": (
        "It would be great if the app had a picture-in-picture mode for the camera feed.",
        "Please add HomeKit support for the {product}.",
        "Any plans to let more than {n} family members share one home?",
        "Could you add a way to export energy data as a CSV file?",
        "I'd love a vacation mode that switches the lights on and off at random.",
        "Would be nice to set separate weekday and weekend schedules on the {product}.",
        "Can you make the {product} work with Alexa routines?",
        "Suggestion: let us rename rooms from the web dashboard as well.",
        "Please make a home screen widget for {device}.",
        "Feature idea: a monthly report of how long the {product} ran.",
        "Is there any chance you'll add geofencing so the {product} turns off when we leave?",
        "I wish I could mute notifications for one device at night.",
        "Could the app support more than one home under the same account?",
        "Please add a Spanish version of the app, my parents would use it.",
        "It'd be handy if the {product} could follow sunrise and sunset times.",
    ),
    "shipping": (
        "My order {order} still says label created after {n} days.",
        "The tracking number for order {order} doesn't work on the {carrier} site.",
        "Where is my {product}? It was supposed to arrive {day}.",
        "{Carrier} says my package was delivered but there's nothing at my door.",
        "Can you ship order {order} to my office address instead of home?",
        "Do you ship to {country}?",
        "How long does standard delivery take to {city}?",
        "Only one of the two boxes from order {order} showed up.",
        "My parcel has been stuck in {city} for a week now.",
        "Can I upgrade order {order} to express delivery?",
        "The delivery estimate keeps moving, first it was {day} and now it's next week.",
        "The driver left a card but never came back, how do I rearrange delivery?",
        "The box with my {product} arrived ripped open and crushed.",
        "I put the wrong street number on order {order}, can the delivery address be fixed?",
    ),
    "cancellation": (
        "Please cancel my {plan} subscription, I don't need it anymore.",
        "How do I cancel the monitoring plan? I can't find the option anywhere.",
        "I want to cancel order {order} before it ships.",
        "Cancel my membership please, we're moving and won't need it.",
        "I'd like to close my Homebase account completely.",
        "Please stop the automatic renewal of my {plan} plan.",
        "The cancel button is greyed out for me, please cancel my {plan} plan for me.",
        "We're switching providers, please end our {plan} subscription.",
        "Can you cancel the {product} I ordered by mistake this morning?",
        "Don't renew my plan next month, I'm done with it.",
        "I want to unsubscribe from the {plan} plan effective today.",
        "Please terminate our {plan} contract at the end of this month.",
        "I'm selling the house, so please cancel everything on my account.",
    ),
    "account_update": (
        "I need to change the email on my account from {email} to {email2}.",
        "Please update my name on the account, I got married and I'm now {first} {newlast}.",
        "How do I change the phone number linked to my account?",
        "Can you transfer ownership of our home account to my {relation}?",
        "I have two accounts by mistake, can you merge them into the one under {email}?",
        "Please make me the account holder instead of my {relation}.",
        "I want to change my username, it still has my old company name in it.",
        "Please update the contact phone on my profile to {phone}.",
        "Where do I edit my profile details like my name and email?",
        "Can you update our business name on the account to {company}?",
        "Please remove my old work email from my profile and use {email2} instead.",
        "My last name is spelled wrong on my profile, it should be {newlast}.",
    ),
}

DETAILS: dict[str, tuple[str, ...]] = {
    "billing": (
        "I checked my bank app and it's definitely there.",
        "We're a small business so I need this for our accounts.",
        "The account is under {email}.",
    ),
    "refund": (
        "I still have the receipt and the original box.",
        "The return label was scanned by {carrier} on {date}.",
        "I'd prefer it back on the original card.",
    ),
    "login_access": (
        "I've tried on wifi and on mobile data.",
        "I already cleared the cache and reinstalled.",
        "My account email is {email}.",
    ),
    "bug_report": (
        "I've already restarted the router and the app.",
        "It started after the update on {date}.",
        "Happy to send screenshots if that helps.",
    ),
    "feature_request": (
        "Other brands already do this.",
        "I think a lot of people would use it.",
        "It would make the app so much more useful for us.",
    ),
    "shipping": (
        "I paid for faster delivery too.",
        "The tracking page hasn't changed since {date}.",
        "I need it before the weekend if possible.",
    ),
    "cancellation": (
        "Please confirm by email once it's done.",
        "No need to offer me a discount, my mind is made up.",
        "I've already unplugged all the devices.",
    ),
    "account_update": (
        "The current details are out of date.",
        "I can verify my identity however you need.",
        "Everything else on the profile is fine.",
    ),
}
GENERIC = (
    "I've been a customer for {years} years.",
    "This is the second time I'm writing about this.",
    "It's pretty urgent.",
    "Thanks in advance.",
    "Not impressed so far, to be honest.",
    "Hope someone can help.",
    "Order was placed on {date} if that matters.",
)
ANGRY = ("Honestly this is ridiculous.", "Third time asking.", "Really frustrated here.")
EMAIL_OPEN = ("Hi,", "Hello support,", "Hi there,", "Good morning,", "Dear Homebase team,", "Hey,")
EMAIL_CLOSE = (
    "Thanks,\n{first}",
    "Regards,\n{first} {last}",
    "Cheers,\n{first}",
    "Thank you,\n{first} {last}",
)
CHAT_OPEN = ("hi", "hey", "hello?", "hi there", "quick question:")


def _slots(rng: random.Random, customer: dict[str, str]) -> dict[str, Any]:
    first, last = customer["first"], customer["last"]
    handle = f"{first}.{last}".lower().replace("'", "").replace("ü", "ue").replace("ë", "e")
    carrier = rng.choice(CARRIERS)
    return {
        "amount": f"${rng.choice([9.99, 14.99, 19.99, 29.0, 49.99, 89.0, 129.0, 249.0, 12.5])}",
        "plan": rng.choice(PLANS),
        "plan2": rng.choice(PLANS),
        "order": f"#{rng.randint(100000, 999999)}",
        "last4": f"{rng.randint(0, 9999):04d}",
        "month": rng.choice(MONTHS),
        "code": rng.choice(("SPRING20", "WELCOME10", "HOME15", "FALLSAVE")),
        "product": rng.choice(PRODUCTS),
        "date": f"{rng.choice(MONTHS)} {rng.randint(1, 28)}",
        "n": rng.randint(2, 9),
        "case": f"#{rng.randint(20000, 89999)}",
        "email": f"{handle}@{rng.choice(('gmail.com', 'outlook.com', 'yahoo.com', 'icloud.com'))}",
        "email2": f"{first.lower()}{rng.randint(1, 99)}@{rng.choice(('proton.me', 'gmail.com', 'fastmail.com'))}",
        "device": rng.choice(DEVICES),
        "relation": rng.choice(RELATIONS),
        "errcode": f"E{rng.randint(100, 999)}",
        "version": f"4.{rng.randint(1, 12)}.{rng.randint(0, 9)}",
        "hour": f"{rng.randint(1, 4)}am",
        "carrier": carrier,
        "Carrier": carrier[0].upper() + carrier[1:],
        "day": rng.choice(DAYS),
        "country": rng.choice(COUNTRIES),
        "city": rng.choice(CITIES),
        "first": first,
        "newlast": rng.choice(LAST_NAMES),
        "phone": f"({rng.randint(201, 989)}) 555-{rng.randint(0, 9999):04d}",
        "company": rng.choice(COMPANIES),
        "years": rng.randint(2, 8),
    }


def _ticket(
    label: str, customer: dict[str, str], core: list[str], rng: random.Random
) -> tuple[str, str]:
    channel = customer["channel"] if rng.random() < 0.7 else rng.choice(CHANNELS)
    slots = _slots(rng, customer)
    sentences = [rng.choice(core)]
    if rng.random() < 0.45:
        pool = DETAILS[label] if rng.random() < 0.6 else GENERIC
        sentences.insert(rng.choice((0, 1)) if pool is GENERIC else 1, rng.choice(pool))
    if rng.random() < 0.12:
        sentences.insert(0, rng.choice(ANGRY))
    body = " ".join(sentences).format(**slots)
    if rng.random() < 0.25:
        body = add_typos(body, rng, rng.randint(1, 2))
    if channel == "email":
        opener = rng.choice(EMAIL_OPEN) + "\n\n" if rng.random() < 0.75 else ""
        closer = "\n\n" + rng.choice(EMAIL_CLOSE).format(**customer) if rng.random() < 0.7 else ""
        return opener + body + closer, channel
    if channel == "chat":
        if rng.random() < 0.4:
            body = body.lower()
        if rng.random() < 0.5:
            body = body.rstrip(".")
        if rng.random() < 0.3:
            body = rng.choice(CHAT_OPEN) + " " + body
        return body, channel
    if channel == "social":
        return "@HomebaseHelp " + body, channel
    return body, channel


def _customers(rng: random.Random, count: int, start: int) -> list[dict[str, str]]:
    return [
        {
            "id": f"C-{start + i * 37:05d}",
            "first": rng.choice(FIRST_NAMES),
            "last": rng.choice(LAST_NAMES),
            "channel": rng.choice(CHANNELS),
        }
        for i in range(count)
    ]


def build(rng: random.Random, n_eval: int = 80, n_train: int = 200) -> Split:
    # Four tickets per customer; eval and train customers are disjoint.
    eval_customers = _customers(rng, n_eval // 4, 10000)
    train_customers = _customers(rng, n_train // 4, 40000)
    eval_core, train_core = holdout(rng, CORE)

    def make(label: str, index: int, is_eval: bool) -> Candidate:
        pool = eval_customers if is_eval else train_customers
        customer = pool[index % len(pool)]
        core = (eval_core if is_eval else train_core)[label]
        text, channel = _ticket(label, customer, core, rng)
        meta = {"customer": customer["id"], "channel": channel, "label": label}
        return Candidate(text, label, label, meta)

    return build_split(make, LABELS, n_eval, n_train, rng)


YAML = """\
name: support-tickets
description: >-
  Routes short Homebase customer messages (email, chat, web form, social) to one of
  eight support queues. It checks that a model follows a fixed label taxonomy and
  answers with the bare label, the everyday job of a small fine-tuned classifier.
  Labels are balanced (10 per label) and several tickets come from each customer,
  so scores are clustered by customer. A LoRA fine-tune of SmolLM2-135M-Instruct on
  train.jsonl should clearly beat the same model zero-shot.
data: eval.jsonl
train: train.jsonl
cluster: customer
generation:
  max_tokens: 8
  temperature: 0
scorers:
  - name: classification
    options: {{labels: [{labels}]}}
  - name: exact
    options: {{lowercase: true}}
"""


def yaml_text() -> str:
    return YAML.format(labels=", ".join(LABELS))
