"""Built-in plugin "evaluators": exact, includes, regex, terms, numeric, json, classification, bleu, chrf, rouge-l, judge."""
