"""Evaluation workflow: the tables and figures of a paired evaluation."""
