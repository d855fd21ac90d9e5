"""
Ed25519 per-vehicle signatures with a fleet key file.

Fleet file (YAML), shared by every vehicle:

    vehicles:
      hero0: {public_key: <base64 of the 32-byte raw Ed25519 public key>}
      hero1: {public_key: ...}

Each vehicle's private key lives in its own file (YAML `{vehicle_id: hero0, private_key:
<base64 of the 32-byte raw private key>}`, mode 0600). For demos a fleet entry may also carry
`private_key`, so one file serves the whole fleet. Bad key files fail fast with the reason.

On the wire a sender is named by its key id (`key_id`): the first 4 bytes of SHA-256 of its raw
public key as a big-endian uint32 (IEEE 1609.2 names certificates by HashedId8, the last 8
bytes of their hash; 4 bytes suffice for a fleet, and a collision fails the fleet file).
"""
import base64
import binascii
from collections import OrderedDict
import hashlib
from pathlib import Path
import struct
from typing import Dict, List, Mapping, Optional, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                               Ed25519PublicKey)
from cryptography.hazmat.primitives.serialization import (Encoding, NoEncryption,
                                                          PrivateFormat, PublicFormat)
import yaml

PathLike = Union[str, Path]


class KeyFileError(ValueError):
    """A fleet or private key file is missing, unreadable or malformed."""


def _b64_key(text, where: str) -> bytes:
    try:
        raw = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError) as error:
        raise KeyFileError(f'{where}: not base64 ({error})') from None
    if len(raw) != 32:
        raise KeyFileError(f'{where}: expected 32 key bytes, got {len(raw)}')
    return raw


def _load_yaml(path: PathLike) -> Mapping:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise KeyFileError(f'cannot read key file {path}: {error}') from None
    except yaml.YAMLError as error:
        raise KeyFileError(f'key file {path} is not YAML: {error}') from None
    if not isinstance(data, dict):
        raise KeyFileError(f'key file {path} must hold a mapping')
    return data


def key_id(public_key: bytes) -> int:
    """HashedId4 of a raw 32-byte Ed25519 public key: SHA-256[:4] as a big-endian uint32."""
    return int.from_bytes(hashlib.sha256(bytes(public_key)).digest()[:4], 'big')


def public_raw(private_key: Ed25519PrivateKey) -> bytes:
    """Raw 32-byte public key of a private key."""
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def private_raw(private_key: Ed25519PrivateKey) -> bytes:
    """Raw 32-byte private key."""
    return private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


class Fleet:
    """
    Public keys of every vehicle allowed to speak on the V2V topic.

    Verdicts are remembered process-wide by the SHA-256 digest of (public key, payload,
    signature), the whole input of an Ed25519 verification: in a container every comm node
    receives each message, and only the first one pays for the verification. The memo holds
    fixed-size digests, never payloads, so it is bounded in bytes (`VERDICT_MEMO_BYTES`)
    whatever the messages' size. Replay and plausibility checks stay per receiver (``inbox``).
    """

    VERDICT_MEMO = 1024
    # a 32-byte digest key (33 + 32 bytes as a Python bytes object), a bool, and the ordered
    # dict's per-entry link and hash slot (about 100 bytes)
    VERDICT_MEMO_BYTES = VERDICT_MEMO * (65 + 100)
    _verdicts: 'OrderedDict[bytes, bool]' = OrderedDict()

    def __init__(self, public_keys: Mapping[str, bytes],
                 private_keys: Optional[Mapping[str, bytes]] = None) -> None:
        """Keys are raw 32-byte strings indexed by vehicle id; key ids must be unique."""
        self._public: Dict[str, Ed25519PublicKey] = {
            vid: Ed25519PublicKey.from_public_bytes(raw) for vid, raw in public_keys.items()}
        self._public_raw = {vid: bytes(raw) for vid, raw in public_keys.items()}
        self.verifications = 0          # signatures actually checked (not remembered)
        self._private_raw = dict(private_keys or {})
        self._key_ids: Dict[str, int] = {}
        self._vehicles: Dict[int, str] = {}
        for vid, raw in public_keys.items():
            kid = key_id(raw)
            if kid in self._vehicles:
                raise KeyFileError(
                    f'vehicles {self._vehicles[kid]} and {vid} share the key id {kid:#010x} '
                    '(same public key or a HashedId4 collision): regenerate one key')
            self._key_ids[vid] = kid
            self._vehicles[kid] = vid

    @classmethod
    def load(cls, path: PathLike) -> 'Fleet':
        """Read a fleet YAML; every entry needs a valid public key."""
        data = _load_yaml(path)
        vehicles = data.get('vehicles')
        if not isinstance(vehicles, dict) or not vehicles:
            raise KeyFileError(f'{path}: needs a non-empty "vehicles" mapping')
        public, private = {}, {}
        for vid, entry in vehicles.items():
            if not isinstance(entry, dict) or 'public_key' not in entry:
                raise KeyFileError(f'{path}: vehicle {vid} has no public_key')
            public[str(vid)] = _b64_key(entry['public_key'], f'{path}: {vid}.public_key')
            if 'private_key' in entry:
                private[str(vid)] = _b64_key(entry['private_key'], f'{path}: {vid}.private_key')
        return cls(public, private)

    def members(self) -> List[str]:
        """Role names of every fleet member."""
        return list(self._public)

    def knows(self, vehicle_id: str) -> bool:
        """Whether the vehicle is a fleet member."""
        return vehicle_id in self._public

    def key_id(self, vehicle_id: str) -> int:
        """Key id (HashedId4) of a fleet member; KeyError for a stranger."""
        return self._key_ids[vehicle_id]

    def vehicle_for_key_id(self, kid: int) -> Optional[str]:
        """Role name of the fleet member with key id `kid`, None if nobody has it."""
        return self._vehicles.get(kid)

    def verify(self, vehicle_id: str, payload: bytes, signature: bytes) -> bool:
        """Check that `signature` is the vehicle's valid Ed25519 signature of `payload`."""
        key = self._public.get(vehicle_id)
        if key is None or len(signature) != 64:
            return False
        payload, signature = bytes(payload), bytes(signature)
        digest = hashlib.sha256(self._public_raw[vehicle_id])
        digest.update(struct.pack('<Q', len(payload)))
        digest.update(payload)
        digest.update(signature)
        memo_key = digest.digest()
        verdicts = Fleet._verdicts
        verdict = verdicts.get(memo_key)
        if verdict is None:
            self.verifications += 1
            try:
                key.verify(signature, payload)
                verdict = True
            except InvalidSignature:
                verdict = False
            verdicts[memo_key] = verdict
            if len(verdicts) > self.VERDICT_MEMO:
                verdicts.popitem(last=False)
        else:
            verdicts.move_to_end(memo_key)
        return verdict

    def embedded_private_key(self, vehicle_id: str) -> Optional[bytes]:
        """Demo fleets may carry private keys; None otherwise."""
        return self._private_raw.get(vehicle_id)


class Signer:
    """Signs the ego's payloads with its private key."""

    def __init__(self, vehicle_id: str, private_key: bytes) -> None:
        """`private_key` is the raw 32-byte Ed25519 key."""
        self.vehicle_id = vehicle_id
        self._key = Ed25519PrivateKey.from_private_bytes(private_key)
        self.key_id = key_id(public_raw(self._key))

    @classmethod
    def load(cls, vehicle_id: str, private_key_file: PathLike = '',
             fleet: Optional[Fleet] = None) -> 'Signer':
        """From the vehicle's own key file, else from a demo fleet file that embeds it."""
        if private_key_file:
            data = _load_yaml(private_key_file)
            owner = str(data.get('vehicle_id', ''))
            if owner != vehicle_id:
                raise KeyFileError(
                    f'{private_key_file} belongs to "{owner}", not to "{vehicle_id}"')
            raw = _b64_key(data.get('private_key', ''), f'{private_key_file}: private_key')
        else:
            raw = fleet.embedded_private_key(vehicle_id) if fleet is not None else None
            if raw is None:
                raise KeyFileError(f'no private key for {vehicle_id}: set private_key_file')
        signer = cls(vehicle_id, raw)
        if fleet is not None and fleet.knows(vehicle_id):
            probe = b'call-key-check'
            if not fleet.verify(vehicle_id, probe, signer.sign(probe)):
                raise KeyFileError(f'private key of {vehicle_id} does not match the fleet file')
        return signer

    def sign(self, payload: bytes) -> bytes:
        """64-byte Ed25519 signature."""
        return self._key.sign(payload)
