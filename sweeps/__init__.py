"""Many runs: the sweepers, launchers and the sweep report."""
