"""The analysis plane: what turns an exchange into stored comparisons."""
