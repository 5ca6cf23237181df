from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RlweParams(_message.Message):
    __slots__ = ("degree", "n_primes", "delta_bits", "mask_bits", "flood_bits", "limb_bits", "ring_bits")
    DEGREE_FIELD_NUMBER: _ClassVar[int]
    N_PRIMES_FIELD_NUMBER: _ClassVar[int]
    DELTA_BITS_FIELD_NUMBER: _ClassVar[int]
    MASK_BITS_FIELD_NUMBER: _ClassVar[int]
    FLOOD_BITS_FIELD_NUMBER: _ClassVar[int]
    LIMB_BITS_FIELD_NUMBER: _ClassVar[int]
    RING_BITS_FIELD_NUMBER: _ClassVar[int]
    degree: int
    n_primes: int
    delta_bits: int
    mask_bits: int
    flood_bits: int
    limb_bits: int
    ring_bits: int
    def __init__(self, degree: _Optional[int] = ..., n_primes: _Optional[int] = ..., delta_bits: _Optional[int] = ..., mask_bits: _Optional[int] = ..., flood_bits: _Optional[int] = ..., limb_bits: _Optional[int] = ..., ring_bits: _Optional[int] = ...) -> None: ...

class RlwePublicKey(_message.Message):
    __slots__ = ("params", "seed", "b")
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    params: RlweParams
    seed: bytes
    b: bytes
    def __init__(self, params: _Optional[_Union[RlweParams, _Mapping]] = ..., seed: _Optional[bytes] = ..., b: _Optional[bytes] = ...) -> None: ...

class RlweCiphertexts(_message.Message):
    __slots__ = ("key_fingerprint", "degree", "n_primes", "count", "seeds", "c0", "c1", "c0_width")
    KEY_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    DEGREE_FIELD_NUMBER: _ClassVar[int]
    N_PRIMES_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    C0_FIELD_NUMBER: _ClassVar[int]
    C1_FIELD_NUMBER: _ClassVar[int]
    C0_WIDTH_FIELD_NUMBER: _ClassVar[int]
    key_fingerprint: bytes
    degree: int
    n_primes: int
    count: int
    seeds: bytes
    c0: bytes
    c1: bytes
    c0_width: int
    def __init__(self, key_fingerprint: _Optional[bytes] = ..., degree: _Optional[int] = ..., n_primes: _Optional[int] = ..., count: _Optional[int] = ..., seeds: _Optional[bytes] = ..., c0: _Optional[bytes] = ..., c1: _Optional[bytes] = ..., c0_width: _Optional[int] = ...) -> None: ...
