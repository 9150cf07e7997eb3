"""The sandbox's webhook signing identity, and PayPal's transmission signature.

PayPal signs each webhook transmission with its private key; the receiver
verifies with the public key in the X.509 certificate named by the
`paypal-cert-url` header. The signed message is

    <transmission_id>|<transmission_time>|<webhook_id>|<CRC32 of the raw body, decimal>

signed RSA-SHA256 with PKCS#1 v1.5 (`paypal-auth-algo: SHA256withRSA`) and sent
base64-encoded in `paypal-transmission-sig`.

The sandbox has its own key pair and a self-signed certificate, made once per
sandbox or loaded from PEM, so a receiver can be given the certificate as its
trust root and check signatures offline, without fetching anything.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

__all__ = ["AUTH_ALGO", "SigningIdentity", "signed_message", "verify_signature"]

AUTH_ALGO = "SHA256withRSA"
_KEY_FILE = "paypal-webhook-key.pem"
_CERT_FILE = "paypal-webhook-cert.pem"


def signed_message(
    transmission_id: str, transmission_time: str, webhook_id: str, body: bytes
) -> bytes:
    crc = zlib.crc32(body) & 0xFFFFFFFF
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{crc}".encode()


def verify_signature(certificate: x509.Certificate, message: bytes, signature_b64: str) -> bool:
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        return False
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class SigningIdentity:
    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @classmethod
    def generate(
        cls, common_name: str = "paymesh PayPal sandbox webhooks", valid_days: int = 3650
    ) -> SigningIdentity:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "paymesh sandbox"),
            ]
        )
        now = datetime.now(UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    @classmethod
    def from_pem(cls, key_pem: bytes, cert_pem: bytes) -> SigningIdentity:
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the PayPal sandbox signs with an RSA key")
        certificate = x509.load_pem_x509_certificate(cert_pem)
        if certificate.public_key() != key.public_key():
            raise ValueError("the certificate is not the key's")
        return cls(key, certificate)

    @classmethod
    def load_or_create(cls, directory: Path) -> SigningIdentity:
        """The identity kept in `directory`, made on first use: a restarted sandbox keeps
        signing with the certificate its receivers already trust."""
        key_path, cert_path = directory / _KEY_FILE, directory / _CERT_FILE
        if key_path.exists() and cert_path.exists():
            return cls.from_pem(key_path.read_bytes(), cert_path.read_bytes())
        identity = cls.generate()
        directory.mkdir(parents=True, exist_ok=True)
        key_path.touch(mode=0o600)
        key_path.write_bytes(identity.key_pem)
        cert_path.write_bytes(identity.cert_pem)
        return identity

    @property
    def key_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def cert_id(self) -> str:
        """A name for the certificate in its URL, in PayPal's `CERT-xxxxxxxx-...` style."""
        digest = hashlib.sha256(self.certificate.public_bytes(serialization.Encoding.DER))
        hexed = digest.hexdigest()
        return f"CERT-{hexed[:8]}-{hexed[8:16]}-{hexed[16:24]}"

    def sign(self, message: bytes) -> str:
        signature = self.private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()
