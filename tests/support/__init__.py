"""Helpers shared by the tests: real servers, trace writers, importable tool functions."""
