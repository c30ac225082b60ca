"""Fast path for upfirdn2d. Filled in by the ops fast-path work; until then `upfirdn2d` uses the reference."""
