"""Topics, publications and their versions, dispatches, rendering, the public archive and feeds."""
