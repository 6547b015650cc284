"""Credentials at the edge: plaintext detection, leak masking, rules checks."""

from proxy.credentials.detect import Detector, Finding, describe
from proxy.credentials.mask import Masker, StreamMasker, masker_for
from proxy.credentials.rules_check import literal_credentials

__all__ = ["Detector", "Finding", "Masker", "StreamMasker", "describe", "literal_credentials",
           "masker_for"]
