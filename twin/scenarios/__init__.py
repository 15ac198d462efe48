"""Fault scenarios: a file format (:mod:`.model`, :mod:`.scenario_file`), the pure timeline and
evaluation (:mod:`.fleet`, :mod:`.timeline`, :mod:`.evaluation`) and the runner that plays a scenario
against a simulated fleet and the twin, headless or live (:mod:`.runner`)."""
