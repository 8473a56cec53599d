"""Host identity: a CA, enrollment, installation and verification."""
