"""The control plane: promotion state, the admin API and its client."""
