"""Secret references resolved at the edge: env, files (rotated), HashiCorp Vault KV v2."""

from proxy.secrets.secret import Secret
from proxy.secrets.store import RouteSecrets, SecretStore

__all__ = ["RouteSecrets", "Secret", "SecretStore"]
