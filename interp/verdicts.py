"""What the classifier's labels and confidence mean, in words: shared by `interp.classifier` (the
JSON's `confidence_means`) and `interp classify --help`, and free of torch so that help stays fast."""

CONFIDENCE_HELP = (
    "confidence: the share of the evidence that agrees with the label, from two halves: the circles\n"
    "(each key frequency's circle isolated and re-run; each main circle weighted by its margin share, its\n"
    "push on the right answer over the whole model's; accompanying circles excluded) and one whole-model\n"
    "vote from gradient symmetricity / distance irrelevance. For clock and pizza: (margin share of that\n"
    "label's circles + 1 if the whole-model vote agrees) / 2; for mixed: the margin share of clear clock\n"
    "and pizza circles; for ambiguous: 1 minus the leading algorithm's evidence; for non-generalizing and\n"
    "not-defined: 1 (accuracy, or the task, alone decides). How often each confidence was right in the\n"
    "calibration sweep: the reliability table in docs/calibration.md (and `reliability` in the JSON).")

# For `interp classify --help` (interp/cli.py): what the command does and what the numbers mean.
CLI_DESCRIPTION = (
    "Classify a trained model as running the clock or the pizza algorithm (Zhong et al. 2023), circle by\n"
    "circle: each key frequency's circle of the embedding is kept alone and the model re-run on all p^2\n"
    "pairs. A clock circle's correct logit ignores a - b (distance irrelevance DI near 1); a pizza circle\n"
    "fits the pizza template |cos(w(a-b)/2)| cos(w(a+b-c)) and has a low DI; an accompanying circle feeds\n"
    "another circle's frequency. Each circle is measured on its own contribution (minus the model with no\n"
    "circle) and weighted by its share of the push on the right answer. The whole model's gradient\n"
    "symmetricity / DI add one vote.\n"
    "Labels: clock, pizza, mixed (clock and pizza circles each carrying >= 1/3 of it), ambiguous (the\n"
    "evidence conflicts or is inconclusive), non-generalizing (below 99 % accuracy on all pairs),\n"
    "not-defined (a task that is no group operation, sq_sum or quad: only accuracy and key frequencies\n"
    "are measured). sub, mul and div models are classified in their group coordinates (mul, div: discrete\n"
    "logs, addition mod p - 1; interp.tasks).\n"
    "Thresholds and their calibration against the authors' runs: docs/calibration.md.\n\n" + CONFIDENCE_HELP)
