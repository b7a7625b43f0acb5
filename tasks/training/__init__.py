"""Training the built-in models; never imported at run time."""
