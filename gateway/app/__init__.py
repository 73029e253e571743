"""The application: the composition root, the twistd options, gateway-admin, the demo."""
