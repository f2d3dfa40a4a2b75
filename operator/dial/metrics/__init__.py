"""Reading metrics from trial output, and exporting Dial's own metrics."""
