"""SRP-6a as protocomm Security 2 uses it: RFC 5054's 3072-bit group, g = 5, SHA-512.

Pure arithmetic, no I/O: ``verifier`` makes what a factory stores on a device, ``SrpServer`` is
the device's half of a handshake and ``SrpClient`` the phone's. Byte conventions follow the
ESP-IDF device (``esp_srp.c``): ``u`` and ``k`` hash values padded to the group size, while ``M``
hashes ``A`` and ``B`` at their minimal length and ``K`` hashes ``S`` at its minimal length.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from jumpstart.errors import InputError

__all__ = [
    "GROUP_BYTES",
    "G",
    "N",
    "SrpClient",
    "SrpServer",
    "random_salt",
    "verifier",
]

# RFC 5054 appendix A, 3072-bit group (the RFC 3526 MODP prime), generator 5.
N = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A0879"
    "8E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B"
    "0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA4836"
    "1C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804"
    "F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6"
    "955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64"
    "ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D226"
    "1AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
    "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
    16,
)
G = 5
GROUP_BYTES = 384
# Client private exponents are 256 bits (as esp_prov draws them).
PRIVATE_BYTES = 32
# The device reads usernames into a buffer sized by a 16-bit length.
USERNAME_MAX = 0xFFFF


def _h(*parts: bytes) -> bytes:
    digest = hashlib.sha512()
    for part in parts:
        digest.update(part)
    return digest.digest()


def _minimal(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _padded(value: int) -> bytes:
    return value.to_bytes(GROUP_BYTES, "big")


def _int(data: bytes) -> int:
    return int.from_bytes(data, "big")


K_MULTIPLIER = _int(_h(_padded(N), _padded(G)))
# H(N) XOR H(PAD(g)), the constant first term of the client proof M.
_HN_XOR_HG = bytes(a ^ b for a, b in zip(_h(_padded(N)), _h(_padded(G)), strict=True))


def _x(username: bytes, password: bytes, salt: bytes) -> int:
    return _int(_h(salt, _h(username, b":", password)))


def verifier(username: bytes, password: bytes, salt: bytes) -> bytes:
    """The 384-byte verifier ``g^x mod N`` a device stores for ``username``/``password``."""
    return _padded(pow(G, _x(username, password, salt), N))


def random_salt(length: int = 16) -> bytes:
    """A salt whose first byte is non-zero: esp_prov round-trips salts through an integer,
    which would drop a leading zero and break the proof."""
    while True:
        salt = secrets.token_bytes(length)
        if salt[0]:
            return salt


def _proof(username: bytes, salt: bytes, a_bytes: bytes, b_bytes: bytes, key: bytes) -> bytes:
    return _h(_HN_XOR_HG, _h(username), salt, a_bytes, b_bytes, key)


@dataclass(frozen=True, slots=True)
class SrpSessionKeys:
    """What both sides hold after a successful exchange."""

    key: bytes
    """K = H(S), 64 bytes; AES-GCM uses its first 32."""
    client_proof: bytes
    device_proof: bytes


class SrpServer:
    """The device's half: ``challenge(A)`` answers ``B``; ``verify(M)`` checks the proof."""

    def __init__(self, salt: bytes, verifier_bytes: bytes, private: bytes | None = None) -> None:
        if not salt or len(verifier_bytes) == 0:
            raise InputError("Security 2 needs a salt and a verifier")
        self.salt = salt
        self._v = _int(verifier_bytes)
        self._b = _int(private if private is not None else secrets.token_bytes(PRIVATE_BYTES))
        self.public = _minimal((K_MULTIPLIER * self._v + pow(G, self._b, N)) % N)
        self._keys: SrpSessionKeys | None = None

    def challenge(self, username: bytes, client_public: bytes) -> bytes:
        """Take ``I`` and ``A``; return ``B`` (minimal length). Refuses degenerate ``A``."""
        if not 1 <= len(username) <= USERNAME_MAX:
            raise InputError(f"username of {len(username)} bytes (1..{USERNAME_MAX})")
        if len(client_public) != GROUP_BYTES:
            raise InputError(f"client public key of {len(client_public)} bytes, not {GROUP_BYTES}")
        a = _int(client_public)
        if a % N == 0:
            raise InputError("client public key is 0 mod N")
        u = _int(_h(_padded(a), _padded(_int(self.public))))
        if u == 0:
            raise InputError("scrambling parameter u is 0")
        secret = pow(a * pow(self._v, u, N), self._b, N)
        key = _h(_minimal(secret))
        client_proof = _proof(username, self.salt, client_public, self.public, key)
        self._keys = SrpSessionKeys(key, client_proof, _h(client_public, client_proof, key))
        return self.public

    def verify(self, client_proof: bytes) -> SrpSessionKeys:
        """Check ``M``; on success the keys (``device_proof`` = ``H(A | M | K)``)."""
        if self._keys is None:
            raise InputError("no challenge issued yet")
        if not hmac.compare_digest(client_proof, self._keys.client_proof):
            raise InputError("client proof does not match (wrong username or password)")
        return self._keys


class SrpClient:
    """The phone's half: ``public`` is ``A``; ``process(salt, B)`` returns ``M``."""

    def __init__(self, username: bytes, password: bytes, private: bytes | None = None) -> None:
        self.username = username
        self._password = password
        while True:
            raw = private if private is not None else secrets.token_bytes(PRIVATE_BYTES)
            self._a = _int(raw)
            public = pow(G, self._a, N)
            # Devices insist on a 384-byte A; redraw the rare shorter one.
            if public.bit_length() > (GROUP_BYTES - 1) * 8 or private is not None:
                break
        self.public = _padded(public)
        self._keys: SrpSessionKeys | None = None

    def process(self, salt: bytes, device_public: bytes) -> bytes:
        b = _int(device_public)
        if b % N == 0:
            raise InputError("device public key is 0 mod N")
        u = _int(_h(_padded(_int(self.public)), _padded(b)))
        if u == 0:
            raise InputError("scrambling parameter u is 0")
        x = _x(self.username, self._password, salt)
        secret = pow((b - K_MULTIPLIER * pow(G, x, N)) % N, self._a + u * x, N)
        key = _h(_minimal(secret))
        client_proof = _proof(self.username, salt, self.public, device_public, key)
        self._keys = SrpSessionKeys(key, client_proof, _h(self.public, client_proof, key))
        return client_proof

    def verify(self, device_proof: bytes) -> SrpSessionKeys:
        """Check the device's ``H(A | M | K)``: proves it holds the verifier."""
        if self._keys is None:
            raise InputError("process() the device's challenge first")
        if not hmac.compare_digest(device_proof, self._keys.device_proof):
            raise InputError("device proof does not match: not the device it claims to be")
        return self._keys
