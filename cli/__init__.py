"""Thin click commands: parse options, call one pipeline function, print a rich summary."""
