"""NIST CAVS 17.3 IKEv1 KDF vectors (SP 800-135): SKEYID, SKEYID_d, SKEYID_a, SKEYID_e.

3,400 cases: 1,700 with pre-shared keys, 1,700 with signatures, across SHA-1/256/384/512 and
g^xy of 256, 2048 and 8192 bits. The files live in the shared folder beside the repository; a
missing folder is a failure, not a skip.
"""

from __future__ import annotations

import lzma
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from snakeswan.crypto.algorithms import hash_by_name
from snakeswan.crypto.keymat import derive_phase1, skeyid_psk, skeyid_sig

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "cavs-ikev1"

HASHES = {"SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}
# Cases per hash in each file: SHA-1 has five sections of 100, the others four.
EXPECTED = {"SHA-1": 500, "SHA-256": 400, "SHA-384": 400, "SHA-512": 400}
TOTAL_PER_FILE = 1700


@dataclass(frozen=True)
class Case:
    section: str  # e.g. "SHA-1, g^xy length = 256, Ni length = 64"
    hash_name: str
    fields: dict[str, bytes]


def _parse(text: str, source: str) -> list[Case]:
    cases: list[Case] = []
    headers: dict[str, str] = {}
    current: dict[str, bytes] | None = None
    hash_header: str | None = None

    def finish() -> None:
        nonlocal current
        if current is not None:
            assert hash_header is not None, f"{source}: case before any [SHA-x] header"
            section = ", ".join([hash_header, *(f"{k} = {v}" for k, v in headers.items())])
            cases.append(Case(section, hash_header, current))
        current = None

    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            finish()
            continue
        if line.startswith("["):
            finish()
            inner = line.strip("[]")
            if inner in HASHES:
                hash_header = inner
            else:
                key, _, value = inner.partition("=")
                headers[key.strip()] = value.strip()
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{source}: unexpected line {line!r}"
        key, value = key.strip(), value.strip()
        if key == "COUNT":
            finish()
            current = {}
            continue
        assert current is not None, f"{source}: {key} outside a case"
        current[key] = bytes.fromhex(value)
    finish()
    return cases


@cache
def load(name: str) -> list[Case]:
    path = VECTORS / name
    if not path.is_file():
        pytest.fail(
            f"CAVS IKEv1 vectors missing: {path} not found. The repository expects the shared folder "
            "beside it (…/main and …/shared/vectors/cavs-ikev1)."
        )
    with lzma.open(path, "rt", encoding="ascii") as f:
        return _parse(f.read(), name)


def check(case: Case, skeyid: bytes) -> None:
    f = case.fields
    h = hash_by_name(HASHES[case.hash_name])
    keys = derive_phase1(h, skeyid, f["g^xy"], f["CKY_I"], f["CKY_R"])
    got = (keys.skeyid, keys.skeyid_d, keys.skeyid_a, keys.skeyid_e)
    want = (f["SKEYID"], f["SKEYID_d"], f["SKEYID_a"], f["SKEYID_e"])
    assert got == want, case.section


@pytest.mark.parametrize("name", ["ikev1_psk.fax.xz", "ikev1_dsa.fax.xz"])
def test_file_has_all_cases(name: str) -> None:
    cases = load(name)
    assert len(cases) == TOTAL_PER_FILE
    # the section headers state the bit lengths; check the parser read them as such
    for case in cases:
        section = dict(part.split(" = ") for part in case.section.split(", ")[1:])
        assert len(case.fields["g^xy"]) * 8 == int(section["g^xy length"])
        assert len(case.fields["Ni"]) * 8 == int(section["Ni length"])
        assert len(case.fields["Nr"]) * 8 == int(section["Nr length"])


@pytest.mark.parametrize("hash_header", list(HASHES))
def test_psk(hash_header: str) -> None:
    cases = [c for c in load("ikev1_psk.fax.xz") if c.hash_name == hash_header]
    assert len(cases) == EXPECTED[hash_header]
    for case in cases:
        f = case.fields
        h = hash_by_name(HASHES[hash_header])
        check(case, skeyid_psk(h, f["pre-shared-key"], f["Ni"], f["Nr"]))


@pytest.mark.parametrize("hash_header", list(HASHES))
def test_signature(hash_header: str) -> None:
    cases = [c for c in load("ikev1_dsa.fax.xz") if c.hash_name == hash_header]
    assert len(cases) == EXPECTED[hash_header]
    for case in cases:
        f = case.fields
        h = hash_by_name(HASHES[hash_header])
        assert "pre-shared-key" not in f
        check(case, skeyid_sig(h, f["Ni"], f["Nr"], f["g^xy"]))
