"""Events: what integrators may be told, recorded in the transaction of each change (issue 17)."""
