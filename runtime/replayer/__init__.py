"""Replay: the same loop with every port answered from a record — the session and the
comparing writer, the replay adapters, the counterfactual report and how records of older
schema revisions are compared. Sits above the loop; nothing below imports it."""
