"""Keys and signatures (Ed25519)."""

from .keys import KeyPair, load_or_create_keypair, load_or_create_secret, public_key_from_raw

__all__ = ["KeyPair", "load_or_create_keypair", "load_or_create_secret", "public_key_from_raw"]
