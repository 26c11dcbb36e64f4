"""focuslock's offline training: focal stacks in, a quantised model bundle out (desktop only)."""
