"""Layer 3: repository verification (structure and data checks) and its reports."""
