"""What the classifier's labels and confidence mean, in words: shared by `interp.classifier` (the
JSON's `confidence_means`) and `interp classify --help`, and free of torch so that help stays fast."""

CONFIDENCE_HELP = (
    "confidence: the share of the evidence that agrees with the label. The evidence is one vote per\n"
    "main circle (each key frequency's circle isolated and re-run, accompanying circles excluded) plus\n"
    "one whole-model vote from gradient symmetricity / distance irrelevance; each votes clock, pizza or\n"
    "unclear. For clock and pizza: the share of votes for that label; for mixed: the share of circles\n"
    "that are a clear clock or pizza; for ambiguous: the share of votes that do not back the leading\n"
    "algorithm; for non-generalizing and not-defined: 1 (accuracy, or the task, alone decides).\n"
    "E.g. 0.75 = 3 of 4 votes agree.")

# For `interp classify --help` (interp/cli.py): what the command does and what the numbers mean.
CLI_DESCRIPTION = (
    "Classify a trained model as running the clock or the pizza algorithm (Zhong et al. 2023), circle by\n"
    "circle: each key frequency's circle of the embedding is kept alone and the model re-run on all p^2\n"
    "pairs. A clock circle's correct logit ignores a - b (distance irrelevance DI near 1); a pizza circle\n"
    "fits the pizza template |cos(w(a-b)/2)| cos(w(a+b-c)) and has a low DI; an accompanying circle feeds\n"
    "another circle's frequency. The whole model's gradient symmetricity / DI add one vote.\n"
    "Labels: clock, pizza, mixed (clock and pizza circles in one model), ambiguous (the evidence conflicts\n"
    "or is inconclusive), non-generalizing (below 99 % accuracy on all pairs), not-defined (a task that is no\n"
    "group operation, sq_sum or quad: only accuracy and key frequencies are measured). sub, mul and div models\n"
    "are classified in their group coordinates (mul, div: discrete logs, addition mod p - 1; interp.tasks).\n"
    "Thresholds and their calibration against the authors' runs: docs/calibration.md.\n\n" + CONFIDENCE_HELP)
