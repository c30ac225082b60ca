"""Ops with a pure-torch reference path (ground truth) and optional fast paths checked against it."""
