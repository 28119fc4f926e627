"""Settings package: base (shared), dev, test and prod. See docs/configuration.md."""
