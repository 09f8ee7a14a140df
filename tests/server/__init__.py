"""Tests of the stream receiver, the sender and their faults."""
