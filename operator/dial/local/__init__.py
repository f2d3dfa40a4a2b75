"""The laptop backend: applies the engine's plans with local processes (`dial run`)."""
