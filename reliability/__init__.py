"""Reliability suite: fuzzing, load, overload, faults, hostile data, replay, security basics.

Not part of the default test suite (it starts real servers for minutes): ``make reliability``.
"""
