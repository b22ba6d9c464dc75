"""Host-local concerns: project paths under the roots, process groups, the machine's time zone."""
