"""Speed devices: each opt-in, behind an explicit contract; a model that does not opt in never sees them."""
