"""Detection: rules (built-in Python and Sigma) over each tenant's committed events, turned into alerts.

- :mod:`vigil.detect.rules`: what a rule is to the engine (RuleInfo, Ev, Hit, Evaluator).
- :mod:`vigil.detect.builtin`: the built-in detections; :mod:`vigil.detect.sigma`: Sigma rules in memory.
- :mod:`vigil.detect.engine`: follows the log by cursor and commits alerts with it.
- :mod:`vigil.detect.loader`: builds the engine from settings (GeoIP file, rules directory).
"""
