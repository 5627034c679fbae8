"""The shipped pipeline specs (YAML); a package so they install with the code."""
