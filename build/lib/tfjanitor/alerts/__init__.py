"""Alert lifecycle (open, worse, remind, resolve), its store, email rendering and delivery."""
