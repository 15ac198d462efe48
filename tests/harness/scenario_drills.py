"""Scenario texts for tests (line numbers inside them are asserted: keep their lines in place)."""

from __future__ import annotations

DRILL = """\
name: kill-switch
title: Kill switch
description: Two faults; nobody acknowledges the stall, so the run aborts and restores the pumps.
learning_objectives: [Acknowledge critical alarms]
seed: 2
duration: 1d
telemetry_every: 10m
fleet:
  kind: inline
  pumps:
    - {device_id: p1, site: s1, drug: baclofen, concentration_mg_per_ml: 2.0,
       program: {mode: continuous, rate_ml_per_day: 0.3}, reservoir_ml: 18}
    - {device_id: p2, site: s1, drug: morphine, concentration_mg_per_ml: 10.0,
       program: {mode: continuous, rate_ml_per_day: 0.4}, reservoir_ml: 15}
    - {device_id: p3, site: s1, drug: morphine, concentration_mg_per_ml: 10.0,
       program: {mode: continuous, rate_ml_per_day: 0.4}, reservoir_ml: 15}
timeline:
  - {at: 1h, id: stall, step: inject_fault, devices: {ids: [p2]}, fault: {fault: motor_stall}}
  - {at: 1h30m, id: bolus, step: bolus, devices: {ids: [p2]}, volume_ml: 0.1, duration_minutes: 10}
  - {at: 2h, id: occlusion, step: inject_fault, devices: {ids: [p1]}, fault: {fault: catheter_occlusion, fraction: 1.0}}
  - {at: 3h, step: patient_symptom, devices: {ids: [p1]}, symptom: itching, severity: mild}
  - {at: 12h, id: late, step: inject_fault, devices: {ids: [p3]}, fault: {fault: memory_error}}
abort_when:
  - {kind: unacknowledged_alarm, priority: high, longer_than: 4h}
expect:
  - {kind: alarm, code: motor_stall, devices: {ids: [p2]}, after: stall, within: 1m}
  - {kind: alarm, code: memory_error, devices: {ids: [p3]}, after: late, within: 1m}
"""
"""Three pumps: a stall at 1h that nobody acknowledges (abort after 4h), a bolus the stalled pump
refuses, an occlusion, a symptom, and a memory error at 12h that an abort drops."""
