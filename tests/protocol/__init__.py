"""Tests of lookwhere.protocol and lookwhere.transport."""
