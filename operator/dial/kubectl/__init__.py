"""The `kubectl dial` plugin: terminal views and controls of Dial experiments on a cluster."""
