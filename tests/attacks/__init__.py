"""Red-team tests: label and score recovery attacks against vertical LR (see each file's docstring)."""
