"""Authorization: Cedar decisions over role bindings, and where the bindings come from."""
