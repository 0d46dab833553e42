"""Built-in plugin "evaluators": exact, includes, regex, json, classification, bleu, chrf, rouge-l, judge."""
