"""Verified caller identity: JWTs checked against JWKS keys (a file or a URL)."""
