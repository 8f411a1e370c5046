"""Built-in tuners. Each is a plugin module registered through the `swiftune` entry point."""
