"""HTTP routes: thin endpoints that parse input, call one service method and render JSON."""
